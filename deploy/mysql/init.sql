-- Users for the production-like stack (docker-compose). Each service creates its own database on start.
-- MySQL runs this only when it initialises an empty data volume: on an existing `mysql-data` volume,
-- run a new GRANT by hand (docker compose exec mysql mysql -uroot -p).
CREATE USER IF NOT EXISTS 'sagaway'@'%' IDENTIFIED BY 'sagaway';
GRANT ALL PRIVILEGES ON `product`.* TO 'sagaway'@'%';
GRANT ALL PRIVILEGES ON `orchestrator`.* TO 'sagaway'@'%';
GRANT ALL PRIVILEGES ON `payment`.* TO 'sagaway'@'%';
GRANT ALL PRIVILEGES ON `identity`.* TO 'sagaway'@'%';
GRANT ALL PRIVILEGES ON `bank`.* TO 'sagaway'@'%';
CREATE USER IF NOT EXISTS 'debezium'@'%' IDENTIFIED BY 'dbz';
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, LOCK TABLES ON *.* TO 'debezium'@'%';
