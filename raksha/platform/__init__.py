"""Where the job runs and what it writes to: the SparkSession, storage through Hadoop's FileSystem,
the Delta output tables and their history, the one lock, the metastore (Derby or PostgreSQL),
run ids, failpoints, and the jars fetched at setup."""
