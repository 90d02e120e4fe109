/* statefx: the state backends a unit test runs its cases against: SQLite
 * in the case's scratch directory, then PostgreSQL in a cluster the test
 * starts itself (tests/lib/pgcluster.sh: initdb and pg_ctl as nobody in a
 * scratch directory, a Unix socket only), each case in a schema of its
 * own.  A missing PostgreSQL fails the test; it is never skipped. */
#ifndef KH_TEST_STATEFX_H
#define KH_TEST_STATEFX_H

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/state.h"

static struct {
	int pg;		    /* the group under way runs on PostgreSQL */
	char dir[64];	    /* the cluster's scratch directory */
	char conninfo[256]; /* its database */
	char spec[512];	    /* the case's store */
	char casedir[64];   /* the case's scratch directory */
	int seq;	    /* schemas made so far */
} statefx;

static void statefx_pg_stop(void);

/* Start the cluster; 0, or -1 after saying why (as a TAP line). */
static int
statefx_pg_start(void)
{
	char cmd[256];
	FILE *p;
	snprintf(statefx.dir, sizeof(statefx.dir), "/tmp/kh-test-pg-XXXXXX");
	if (mkdtemp(statefx.dir) == NULL) {
		printf("not ok - a scratch directory for PostgreSQL\n");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "tests/lib/pgcluster.sh start %s %d", statefx.dir,
		 (int)getpid());
	if ((p = popen(cmd, "r")) == NULL ||
	    fgets(statefx.conninfo, sizeof(statefx.conninfo), p) == NULL) {
		if (p)
			pclose(p);
		printf("not ok - a PostgreSQL cluster for the tests (tests/lib/pgcluster.sh)\n");
		statefx_pg_stop();
		return -1;
	}
	statefx.conninfo[strcspn(statefx.conninfo, "\n")] = '\0';
	if (pclose(p) != 0) {
		printf("not ok - a PostgreSQL cluster for the tests (tests/lib/pgcluster.sh)\n");
		statefx_pg_stop();
		return -1;
	}
	statefx.pg = 1;
	return 0;
}

static void
statefx_pg_stop(void)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "tests/lib/pgcluster.sh stop %s && rm -rf %s", statefx.dir,
		 statefx.dir);
	if (system(cmd) != 0) /* (stop says why) */
		printf("# stopping the PostgreSQL cluster in %s failed\n", statefx.dir);
	statefx.pg = 0;
}

/* Raw SQL on the case's store (to damage it, or to act as another writer
 * would); 0, or -1 with the database's message in err. */
static int
statefx_sql(const char *sql, char *err, size_t errlen)
{
	int rc = 0;
	if (!statefx.pg) {
		char path[128], *msg = NULL;
		sqlite3 *db;
		snprintf(path, sizeof(path), "%s/state.db", statefx.casedir);
		if (sqlite3_open(path, &db) != SQLITE_OK ||
		    sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
			rc = -1;
		}
		sqlite3_free(msg);
		sqlite3_close(db);
		return rc;
	}
	PGconn *c = PQconnectdb(statefx.spec + strlen("postgresql:"));
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(c));
		rc = -1;
	}
	PQclear(r);
	PQfinish(c);
	return rc;
}

/* A new, empty store for the case about to run, in dir (SQLite) or in a
 * new schema of the cluster's database (PostgreSQL). */
static void
statefx_new(const char *dir)
{
	snprintf(statefx.casedir, sizeof(statefx.casedir), "%s", dir);
	if (!statefx.pg) {
		snprintf(statefx.spec, sizeof(statefx.spec), "sqlite");
		return;
	}
	char sql[64], err[256];
	statefx.seq++;
	snprintf(statefx.spec, sizeof(statefx.spec), "postgresql:%s", statefx.conninfo);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA t%d", statefx.seq);
	if (statefx_sql(sql, err, sizeof(err)) < 0)
		fprintf(stderr, "# %s: %s", sql, err);
	snprintf(statefx.spec, sizeof(statefx.spec), "postgresql:%s options='-c search_path=t%d'",
		 statefx.conninfo, statefx.seq);
}

/* Open the case's store (again). */
static struct state *
statefx_open(void)
{
	char err[256];
	struct state *st = state_open(statefx.spec, statefx.casedir, 0, err, sizeof(err));
	if (st == NULL)
		fprintf(stderr, "# %s\n", err);
	return st;
}

#endif
