"""Money: the ledger (accounts, holds, entries), prices and quotes, Stars invoices and refunds."""
