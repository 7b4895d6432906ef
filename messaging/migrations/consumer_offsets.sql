-- Where each consumer resumes, per (topic, partition), in KAFKA_CONSUMER_MODE=assign (the default):
-- common/src/inbox.rs writes it in the same transaction as the effects of the messages before it.
-- IF NOT EXISTS: databases from before this migration already got the table from the service at run
-- time (with this same definition), and keep it and its positions.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    topic       VARCHAR(255) NOT NULL,
    part        INT          NOT NULL,
    next_offset BIGINT       NOT NULL,
    PRIMARY KEY (topic, part)
) ENGINE = InnoDB;
