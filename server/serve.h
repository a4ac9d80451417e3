/*
 * serve.h - `convscope serve`: the HTTP service as one call for the command line.
 */
#ifndef CS_SERVER_SERVE_H
#define CS_SERVER_SERVE_H

/* argv[0] is "serve"; the rest are the flags of `convscope serve --help`. Runs until
 * SIGINT or SIGTERM, then shuts down cleanly. Returns the process exit status
 * (0, or 1 when it could not start, 2 for bad flags). */
int cs_serve_main(int argc, char **argv);

#endif
