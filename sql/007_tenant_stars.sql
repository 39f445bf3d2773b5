-- A tenant's own Stars top-up packages and rate; NULL means the platform's STARS_PACKAGES / STARS_RATE_MINOR.
ALTER TABLE tenants
    ADD COLUMN stars_packages integer[]
        CHECK (stars_packages IS NULL OR (cardinality(stars_packages) BETWEEN 1 AND 8
               AND 1 <= ALL (stars_packages) AND 10000 >= ALL (stars_packages))),
    ADD COLUMN stars_rate_minor bigint CHECK (stars_rate_minor IS NULL OR stars_rate_minor > 0);
