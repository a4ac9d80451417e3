/*
 * commands.h - the subcommands that live in files of their own (main.c has the rest).
 * Each takes argv with argv[0] the command's name and returns the exit status.
 */
#ifndef CS_CLI_COMMANDS_H
#define CS_CLI_COMMANDS_H

#define CS_EXPLAIN_USAGE                                                                                     \
    "  explain --model FILE --method M[,M...]|all [--out DIR] [--layer L] [--class C]\n"                     \
    "          [--score logit|probability] [--samples N] [--noise X] [--steps N] [--baseline black|blur|noise]\n" \
    "          [--blur-sigma X] [--patch N] [--stride N] [--batch N] [--seed N] [--no-metrics]\n"              \
    "          [--data DIR] [--shards N [--shard I]] IMAGE... | --sample test:0-999\n"

/* explain.c */
int cs_cmd_explain(int argc, char **argv);

struct cs_model;
/* main.c: sets m's inference precision from a --precision value ("fp32" or "bf16"; NULL:
 * leaves it). 0, or -1 after printing why (a bad value, or bf16 on a CPU without it:
 * asked by name, bf16 is not quietly replaced by fp32). */
int cs_cli_precision(struct cs_model *m, const char *value);

#endif
