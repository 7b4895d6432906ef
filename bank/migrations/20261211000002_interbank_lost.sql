-- A leg in doubt whose coordinator answered that it issued the transfer but has no record of it
-- (lost, e.g. restored from a backup): the leg stays PREPARED (never presumed aborted) and this
-- says since when the coordinator has said so; `bank_interbank_in_doubt_lost` counts such legs
-- and an alert fires (docs/banks.md, "A transfer its coordinator lost").
ALTER TABLE interbank_participants ADD COLUMN coordinator_lost_at DATETIME(6) NULL;
