"""What a tenant's admins do about users: bans, and the audit log of what admins did."""
