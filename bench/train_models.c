/*
 * train_models.c - `make bench`: training speed of graph models beside PyTorch's.
 *
 * Trains the networks of bench/train_nets.h (the notebook's CNN, a small ResNet, a
 * small MobileNet, a small Inception net) on Fashion-MNIST with cs_train (batches of
 * 128, Adam) and prints each one's training images/s: one epoch of --steps batches to
 * warm up, then --reps epochs of --steps batches, the median. PyTorch trains the same
 * architectures (bench/train_models_torch.py, on as many threads as convscope's pool)
 * in the same run, the two taking turns after each timed epoch, so the ratios compare
 * like with like on a shared machine; without PyTorch the table says why.
 *
 * Where convscope's step goes: the nodes that took most of its timed epochs (the
 * core's per-node profile; --layers prints every node).
 *
 * Usage: train_models [--steps 8] [--reps 3] [--torch-steps 2] [--layers] [--no-torch]
 *                     [--python /usr/bin/python3] [--script bench/train_models_torch.py]
 *                     [--data DIR] [--only NAME]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blas.h"
#include "parallel.h"
#include "train.h"
#include "train_nets.h"

enum { BATCH = 128, MAX_REPS = 15 };

typedef struct {
    const char *python, *script, *data, *only;
    int steps, reps, torch_steps, layers, no_torch;
} options;

/* PyTorch in a child process, answering "run NAME STEPS" with "done NAME SECONDS". */
typedef struct {
    pid_t pid;
    FILE *to, *from;
    char version[256];
    char names[TN_N_NETS][32];
    long params[TN_N_NETS];
    int n;
} torch_child;

static int torch_start(torch_child *t, const options *o, char *why, size_t whylen)
{
    memset(t, 0, sizeof *t);
    if (access(o->python, X_OK) != 0) {
        snprintf(why, whylen, "%s is not there", o->python);
        return -1;
    }
    int in[2], out[2];
    if (pipe(in) != 0) return snprintf(why, whylen, "no pipe"), -1;
    if (pipe(out) != 0) {
        close(in[0]), close(in[1]);
        return snprintf(why, whylen, "no pipe"), -1;
    }
    char threads[16], batch[16];
    snprintf(threads, sizeof threads, "%d", cs_parallel_threads());
    snprintf(batch, sizeof batch, "%d", BATCH);
    t->pid = fork();
    if (t->pid < 0) return snprintf(why, whylen, "fork failed"), -1;
    if (t->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl(o->python, o->python, o->script, "--threads", threads, "--batch", batch, "--data", o->data,
              (char *)NULL);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    t->to = fdopen(in[1], "w");
    t->from = fdopen(out[0], "r");
    char line[256];
    while (t->to && t->from && fgets(line, sizeof line, t->from)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "skip: ", 6)) {
            snprintf(why, whylen, "%s", line + 6);
            return -1;
        }
        if (!strncmp(line, "ready ", 6)) {
            snprintf(t->version, sizeof t->version, "%s", line + 6);
            return 0;
        }
        if (t->n < TN_N_NETS && sscanf(line, "net %31s %ld", t->names[t->n], &t->params[t->n]) == 2) t->n++;
    }
    snprintf(why, whylen, "%s %s stopped before it was ready", o->python, o->script);
    return -1;
}

static void torch_stop(torch_child *t)
{
    if (t->to) {
        fputs("quit\n", t->to);
        fclose(t->to);
    }
    if (t->from) fclose(t->from);
    if (t->pid > 0) waitpid(t->pid, NULL, 0);
    memset(t, 0, sizeof *t);
}

/* Seconds for `steps` PyTorch steps of the named net, or -1. */
static double torch_run(torch_child *t, const char *name, int steps)
{
    if (!t->pid) return -1;
    char line[256], got[32];
    double s;
    fprintf(t->to, "run %s %d\n", name, steps);
    fflush(t->to);
    if (!fgets(line, sizeof line, t->from) || sscanf(line, "done %31s %lf", got, &s) != 2 || strcmp(got, name))
        return -1;
    return s;
}

static long torch_params(const torch_child *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->names[i], name)) return t->params[i];
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* cs_train's progress callback: after the warm-up epoch the profile starts from zero;
 * after each timed epoch PyTorch runs its turn. */
typedef struct {
    torch_child *torch;
    const char *name;
    int torch_steps, n_torch;
    double torch_s[MAX_REPS];
    double *profile;
    size_t profile_len;
} turns;

static void on_progress(const cs_progress *p, const cs_epoch_record *finished, void *user)
{
    turns *t = user;
    (void)p;
    if (!finished) return;
    if (finished->epoch == 1) {
        memset(t->profile, 0, t->profile_len * sizeof *t->profile);
        return;
    }
    double s = torch_run(t->torch, t->name, t->torch_steps);
    if (s > 0 && t->n_torch < MAX_REPS) t->torch_s[t->n_torch++] = s;
}

typedef struct {
    int node;
    double s;
} node_time;

static int cmp_node_time(const void *a, const void *b)
{
    double x = ((const node_time *)a)->s, y = ((const node_time *)b)->s;
    return (x < y) - (x > y);
}

/* The nodes that took most of the step (forward + backward), or every node. */
static void print_profile(const cs_model *m, const double *prof, int steps, int all)
{
    const int L = m->n_layers;
    node_time *nt = malloc((size_t)L * sizeof *nt);
    if (!nt) return;
    double total = prof[2 * L];
    for (int i = 0; i < L; i++) {
        nt[i] = (node_time){i, prof[i] + prof[L + i]};
        total += nt[i].s;
    }
    if (all) {
        printf("    %-22s %-18s %8s %8s (ms per step)\n", "node", "kind", "forward", "backward");
        for (int i = 0; i < L; i++)
            printf("    %-22s %-18s %8.2f %8.2f\n", m->layers[i].name, cs_layer_kind_name(m->layers[i].kind),
                   prof[i] * 1e3 / steps, prof[L + i] * 1e3 / steps);
        printf("    %-22s %-18s %8.2f\n", "loss, penalties, Adam", "", prof[2 * L] * 1e3 / steps);
    } else {
        /* By kind first (what a faster kernel would change), then the largest nodes. */
        double by_kind[CS_KIND_COUNT] = {0};
        for (int i = 0; i < L; i++) by_kind[m->layers[i].kind] += nt[i].s;
        printf("    %.1f ms per step:", total * 1e3 / steps);
        for (int shown = 0; shown < 4; shown++) {
            int best = -1;
            for (int c = 0; c < CS_KIND_COUNT; c++)
                if (by_kind[c] > 0 && (best < 0 || by_kind[c] > by_kind[best])) best = c;
            if (best < 0) break;
            printf("%s %s %.0f%%", shown ? "," : "", cs_layer_kind_name((cs_layer_kind)best),
                   total > 0 ? 100 * by_kind[best] / total : 0);
            by_kind[best] = 0;
        }
        printf(", Adam and the loss %.0f%%\n      largest nodes:", total > 0 ? 100 * prof[2 * L] / total : 0);
        qsort(nt, (size_t)L, sizeof *nt, cmp_node_time);
        for (int k = 0; k < 4 && k < L; k++) {
            const int i = nt[k].node;
            printf("%s %s %.0f%% (forward %.1f, backward %.1f ms)", k ? "," : "", m->layers[i].name,
                   total > 0 ? 100 * nt[k].s / total : 0, prof[i] * 1e3 / steps, prof[L + i] * 1e3 / steps);
        }
        printf("\n");
    }
    free(nt);
}

static int parse(int argc, char **argv, options *o)
{
    *o = (options){.python = "/usr/bin/python3", .script = "bench/train_models_torch.py",
                   .data = CS_DEFAULT_DATA_DIR, .steps = 8, .reps = 3, .torch_steps = 2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--layers")) o->layers = 1;
        else if (!strcmp(a, "--no-torch")) o->no_torch = 1;
        else if (v && !strcmp(a, "--steps")) o->steps = atoi(v), i++;
        else if (v && !strcmp(a, "--reps")) o->reps = atoi(v), i++;
        else if (v && !strcmp(a, "--torch-steps")) o->torch_steps = atoi(v), i++;
        else if (v && !strcmp(a, "--python")) o->python = v, i++;
        else if (v && !strcmp(a, "--script")) o->script = v, i++;
        else if (v && !strcmp(a, "--data")) o->data = v, i++;
        else if (v && !strcmp(a, "--only")) o->only = v, i++;
        else {
            fprintf(stderr, "train_models: unknown or incomplete option '%s'\n", a);
            return -1;
        }
    }
    int known = !o->only;
    for (int k = 0; k < TN_N_NETS; k++) known |= o->only && !strcmp(o->only, TN_NETS[k].name);
    if (!known) {
        fprintf(stderr, "train_models: no model '%s' (notebook, resnet, mobilenet, inception)\n", o->only);
        return -1;
    }
    if (o->steps < 1 || o->torch_steps < 1 || o->reps < 1 || o->reps > MAX_REPS) {
        fprintf(stderr, "train_models: steps and torch steps must be positive, reps 1..%d\n", MAX_REPS);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* OpenBLAS's kernels for this CPU (may re-execute), one thread inside each of the
     * pool's workers, as the server and the CLI run it. */
    if (cs_blas_init(argc, argv) != 0) return 1;
    cs_blas_set_threads(1);
    options o;
    if (parse(argc, argv, &o) != 0) return 2;
    signal(SIGPIPE, SIG_IGN); /* a PyTorch child that dies shows as a failed read */
    char err[256];
    cs_dataset train = {0};
    if (cs_dataset_load(o.data, "train", &train, err, sizeof err) != 0) {
        fprintf(stderr, "train_models: %s\n", err);
        return 1;
    }
    torch_child torch = {0};
    char why[256] = "--no-torch";
    int have_torch = !o.no_torch && torch_start(&torch, &o, why, sizeof why) == 0;
    if (!have_torch) torch_stop(&torch);
    printf("training graph models, batches of %d, Adam (OpenBLAS %s, %d threads; warm-up %d steps, then the median "
           "of %d x %d steps)\n",
           BATCH, cs_blas_core(), cs_parallel_threads(), o.steps, o.reps, o.steps);
    if (have_torch)
        printf("  PyTorch %s: %d steps after each convscope epoch, in turns\n", torch.version, o.torch_steps);
    else
        printf("  PyTorch skipped: %s\n", why);

    double cs_ips[TN_N_NETS] = {0}, pt_ips[TN_N_NETS] = {0};
    cs_model *models[TN_N_NETS] = {0};
    double *profiles[TN_N_NETS] = {0};
    int rc = 0;
    for (int k = 0; k < TN_N_NETS; k++) {
        const tn_net *net = &TN_NETS[k];
        if (o.only && strcmp(o.only, net->name)) continue;
        cs_model *m = models[k] = net->build(err, sizeof err);
        size_t plen = m ? 2 * (size_t)m->n_layers + 1 : 0;
        double *prof = profiles[k] = m ? calloc(plen, sizeof *prof) : NULL;
        if (!m || !prof) {
            fprintf(stderr, "train_models: %s: %s\n", net->name, m ? "out of memory" : err);
            rc = 1;
            break;
        }
        static torch_child none; /* answers nothing: no PyTorch turns */
        turns t = {.torch = have_torch ? &torch : &none, .name = net->name, .torch_steps = o.torch_steps,
                   .profile = prof, .profile_len = plen};
        if (have_torch && torch_run(&torch, net->name, 1) < 0) { /* PyTorch's warm-up step */
            fprintf(stderr, "train_models: PyTorch did not train %s; going on without it\n", net->name);
            torch_stop(&torch);
            have_torch = 0;
            t.torch = &none;
        }
        cs_train_config cfg;
        cs_train_config_default(&cfg);
        cfg.epochs = 1 + o.reps;
        cfg.train_limit = o.steps * BATCH;
        cfg.profile = prof;
        if (cs_train(m, &train, NULL, &cfg, on_progress, &t, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "train_models: %s: %s\n", net->name, err);
            rc = 1;
            break;
        }
        double s[MAX_REPS];
        for (int r = 0; r < o.reps; r++) s[r] = m->meta.history[r + 1].seconds;
        cs_ips[k] = o.steps * BATCH / median(s, o.reps);
        if (t.n_torch == o.reps) pt_ips[k] = o.torch_steps * BATCH / median(t.torch_s, t.n_torch);
    }
    if (!rc) {
        printf("  %-10s %-42s %9s %10s %14s %14s %9s\n", "model", "", "params", "MFLOP/img", "convscope img/s",
               "PyTorch img/s", "ratio");
        for (int k = 0; k < TN_N_NETS; k++) {
            if (!models[k]) continue;
            const cs_model *m = models[k];
            size_t params = 0;
            for (int i = 0; i < m->n_layers; i++) params += cs_layer_trainable_count(&m->layers[i]);
            long tp = have_torch ? torch_params(&torch, TN_NETS[k].name) : -1;
            printf("  %-10s %-42s %9zu %10.2f %14.0f ", TN_NETS[k].name, TN_NETS[k].what, params,
                   tn_forward_flops(m) / 1e6, cs_ips[k]);
            if (pt_ips[k] > 0) printf("%14.0f %8.1fx", pt_ips[k], cs_ips[k] / pt_ips[k]);
            else printf("%14s %9s", "-", "-");
            if (tp >= 0 && (size_t)tp != params) printf("  (PyTorch's net has %ld parameters!)", tp);
            printf("\n");
        }
        printf("  (params: trainable; MFLOP: multiply-adds x2 of one image's forward pass; ratio: convscope / "
               "PyTorch)\n");
        printf("  where convscope's training step goes (the core's per-node profile, timed epochs):\n");
        for (int k = 0; k < TN_N_NETS; k++) {
            if (!models[k]) continue;
            printf("  %s\n", TN_NETS[k].name);
            print_profile(models[k], profiles[k], o.steps * o.reps, o.layers);
        }
    }
    if (have_torch) torch_stop(&torch);
    for (int k = 0; k < TN_N_NETS; k++) {
        cs_model_free(models[k]);
        free(profiles[k]);
    }
    cs_dataset_free(&train);
    return rc;
}
