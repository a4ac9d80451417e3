/*
 * test_kernels_torch.c - the pooling and activation kernels against PyTorch's values
 * and gradients for the semantics that are easy to get subtly wrong (ceil mode with
 * padding and count_include_pad, dilation, ties in max pooling, activations at their kinks and
 * in their tails). The fixture tests/data/kernels/torch.txt is written by
 * tests/kernels/make_fixture.py; values must agree to 1e-5 (relative above 1).
 * Run from the project root.
 */
#include "test.h"
#include "kernels/check.h"

#define FIXTURE "tests/data/kernels/torch.txt"
#define TOL 1e-5

static const char *actf_names[CS_ACTF_COUNT] = {"relu",       "clip", "leaky",     "elu",      "sigmoid",
                                                "tanh",       "swish", "hard_sigmoid", "hard_swish", "gelu",
                                                "gelu_tanh", "softplus"};

/* One case of the fixture: its header words and its named number lists. */
#define MAX_LISTS 8
typedef struct {
    char type[16], name[64], kind[32];
    double kind_args[2];
    int lists;
    char key[MAX_LISTS][8];
    double *val[MAX_LISTS];
    size_t len[MAX_LISTS];
} fx_case;

static const double *fx_list(const fx_case *c, const char *key, size_t *len)
{
    for (int i = 0; i < c->lists; i++)
        if (!strcmp(c->key[i], key)) {
            *len = c->len[i];
            return c->val[i];
        }
    *len = 0;
    return NULL;
}

static void fx_clear(fx_case *c)
{
    for (int i = 0; i < c->lists; i++) free(c->val[i]);
    memset(c, 0, sizeof *c);
}

/* The numbers after the key on a line. */
static int fx_parse_numbers(fx_case *c, const char *key, char *rest)
{
    if (c->lists == MAX_LISTS || strlen(key) >= sizeof c->key[0]) return -1;
    size_t cap = 64, n = 0;
    double *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    for (char *tok = strtok(rest, " \n"); tok; tok = strtok(NULL, " \n")) {
        char *end;
        double d = strtod(tok, &end);
        if (*end) {
            free(v);
            return -1;
        }
        if (n == cap) {
            double *w = realloc(v, (cap *= 2) * sizeof *v);
            if (!w) {
                free(v);
                return -1;
            }
            v = w;
        }
        v[n++] = d;
    }
    strcpy(c->key[c->lists], key);
    c->val[c->lists] = v;
    c->len[c->lists++] = n;
    return 0;
}

static int compare(const char *what, const float *got, const double *want, size_t n)
{
    return k_compare(what, got, want, n, TOL);
}

static void run_pool(const fx_case *c)
{
    size_t ng, no, nx, ny, ndy, ndx;
    const double *geom = fx_list(c, "geom", &ng), *out = fx_list(c, "out", &no), *x = fx_list(c, "x", &nx),
                 *y = fx_list(c, "y", &ny), *dy = fx_list(c, "dy", &ndy), *dx = fx_list(c, "dx", &ndx);
    if (ng != 16 || no != 2 || !x || !y || !dy || !dx) {
        CHECK(0, "%s: malformed case", c->name);
        return;
    }
    int gi[16];
    for (int i = 0; i < 16; i++) gi[i] = (int)geom[i];
    cs_pool2d_geom g = {.n = gi[0], .ih = gi[1], .iw = gi[2], .c = gi[3], .kh = gi[4], .kw = gi[5], .sh = gi[6],
                        .sw = gi[7], .pt = gi[8], .pl = gi[9], .pb = gi[10], .pr = gi[11], .count_include_pad = gi[13],
                        .dh = gi[14], .dw = gi[15]};
    const int ceil = gi[12];
    g.oh = cs_pool2d_out_size(g.ih, (g.kh - 1) * g.dh + 1, g.sh, g.pt, g.pb, ceil);
    g.ow = cs_pool2d_out_size(g.iw, (g.kw - 1) * g.dw + 1, g.sw, g.pl, g.pr, ceil);
    CHECK(g.oh == (int)out[0] && g.ow == (int)out[1], "%s: output %dx%d, PyTorch's %dx%d", c->name, g.oh, g.ow,
          (int)out[0], (int)out[1]);
    const size_t in_size = (size_t)g.n * g.ih * g.iw * g.c, out_size = (size_t)g.n * g.oh * g.ow * g.c;
    if (g.oh != (int)out[0] || g.ow != (int)out[1] || nx != in_size || ny != out_size || ndy != ny || ndx != nx) {
        CHECK(0, "%s: sizes disagree", c->name);
        return;
    }
    CHECK(cs_pool2d_check(&g) == NULL, "%s: %s", c->name, cs_pool2d_check(&g));
    float *fx = K_FLOATS(nx), *fy = K_FLOATS(ny), *fdy = K_FLOATS(ny), *fdx = K_FLOATS(nx);
    for (size_t i = 0; i < nx; i++) fx[i] = (float)x[i];
    for (size_t i = 0; i < ny; i++) fdy[i] = (float)dy[i];
    const int is_max = !strcmp(c->kind, "max");
    char what[96];
    if (is_max) {
        cs_maxpool2d_forward(&g, fx, fy);
        cs_maxpool2d_backward(&g, fx, fy, fdy, fdx);
    } else {
        cs_avgpool2d_forward(&g, fx, fy);
        cs_avgpool2d_backward(&g, fdy, fdx);
    }
    snprintf(what, sizeof what, "%s y", c->name);
    compare(what, fy, y, ny);
    snprintf(what, sizeof what, "%s dx", c->name);
    compare(what, fdx, dx, nx);
    free(fx), free(fy), free(fdy), free(fdx);
}

static void run_act(const fx_case *c)
{
    size_t nx, ny, ndy, ndx;
    const double *x = fx_list(c, "x", &nx), *y = fx_list(c, "y", &ny), *dy = fx_list(c, "dy", &ndy),
                 *dx = fx_list(c, "dx", &ndx);
    int kind = -1;
    for (int k = 0; k < CS_ACTF_COUNT; k++)
        if (!strcmp(c->kind, actf_names[k])) kind = k;
    if (kind < 0 || !x || ny != nx || ndy != nx || ndx != nx) {
        CHECK(0, "%s: malformed case", c->name);
        return;
    }
    const cs_actf_params p = {(cs_actf)kind, (float)c->kind_args[0], (float)c->kind_args[1]};
    float *fx = K_FLOATS(nx), *fy = K_FLOATS(nx), *fdy = K_FLOATS(nx), *fdx = K_FLOATS(nx);
    for (size_t i = 0; i < nx; i++) fx[i] = (float)x[i], fdy[i] = (float)dy[i];
    cs_actf_forward(&p, nx, fx, fy);
    cs_actf_backward(&p, nx, fx, fy, fdy, fdx);
    char what[96];
    snprintf(what, sizeof what, "%s y", c->name);
    compare(what, fy, y, nx);
    snprintf(what, sizeof what, "%s dx", c->name);
    compare(what, fdx, dx, nx);
    free(fx), free(fy), free(fdy), free(fdx);
}

/* Runs the fixture's cases of one type ("pool" or "act"); returns how many. */
static int run_fixture(const char *type)
{
    FILE *f = fopen(FIXTURE, "r");
    if (!f) {
        fprintf(stderr, "setup: cannot open %s (run from the project root)\n", FIXTURE);
        exit(99);
    }
    char *line = NULL;
    size_t cap = 0;
    int cases = 0, lineno = 0;
    fx_case c = {0};
    int ok = getline(&line, &cap, f) > 0 && !strcmp(line, "convscope-kernels-fixture 1\n");
    CHECK(ok, "%s: not a version 1 fixture", FIXTURE);
    while (ok && getline(&line, &cap, f) > 0) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        char key[16];
        int used = 0;
        if (sscanf(line, "%15s %n", key, &used) != 1) continue;
        char *rest = line + used;
        if (!strcmp(key, "case")) {
            fx_clear(&c);
            ok = sscanf(rest, "%15s %63s", c.type, c.name) == 2;
        } else if (!strcmp(key, "kind")) {
            ok = sscanf(rest, "%31s %lf %lf", c.kind, &c.kind_args[0], &c.kind_args[1]) >= 1;
        } else if (!strcmp(key, "end")) {
            ok = !strcmp(c.type, "pool") || !strcmp(c.type, "act");
            if (ok && !strcmp(c.type, type)) {
                if (!strcmp(type, "pool")) run_pool(&c);
                else run_act(&c);
                cases++;
            }
        } else {
            ok = fx_parse_numbers(&c, key, rest) == 0;
        }
        CHECK(ok, "%s: line %d unreadable", FIXTURE, lineno + 1);
    }
    fx_clear(&c);
    free(line);
    fclose(f);
    return cases;
}

static void test_torch_pooling(void)
{
    int n = run_fixture("pool");
    CHECK(n >= 10, "the fixture holds %d pooling cases", n);
}

static void test_torch_activations(void)
{
    int n = run_fixture("act");
    CHECK(n >= 10, "the fixture holds %d activation cases", n);
}

int main(void)
{
    RUN(test_torch_pooling);
    RUN(test_torch_activations);
    return test_summary("kernels_torch");
}
