/* backup_cli: the `raftkv snapshot` subcommands (backup_cli.c): save a
 * backup from a running member, describe one, restore one into the data
 * dir of a new cluster's member. Must never be reached from the node. */
#ifndef RAFTKV_BACKUP_CLI_H
#define RAFTKV_BACKUP_CLI_H

/* argv[0] is "snapshot". The process exit status: 0, 1 (failed: a bad
 * file, an unreachable member), 2 (bad usage). */
int backup_cli_main(int argc, char **argv);

#endif
