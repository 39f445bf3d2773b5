-- Referrals (tenant_runtime/telegram/handlers/referrals.py): an optional bonus for the invited user as
-- well as the referrer's, and the count of a user's referrals read without scanning the shop's users.
ALTER TABLE tenants ADD COLUMN referral_bonus_invited bigint NOT NULL DEFAULT 0 CHECK (referral_bonus_invited >= 0);
CREATE INDEX bot_users_referred_by ON bot_users (tenant_id, referred_by) WHERE referred_by IS NOT NULL;
