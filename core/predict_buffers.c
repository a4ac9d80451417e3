/*
 * predict_buffers.c - the buffers a prediction writes (predict_buffers.h).
 *
 * Times are node indices, the order a pass runs them in. Node i's output is alive
 * from when it may be written to when its last reader runs. A chain writes its last
 * output at the step of its first node, up to three single-reader links below (conv
 * -> batch norm -> add -> activation), and an inverted residual block run whole (in
 * bands, or split by channels) at the step of its expand conv, up to nine links below
 * (three chains), while it still reads the block's input: so "may be written" starts
 * at the earliest node nine such links up: early enough for every chain and block
 * fast_plan.c makes, whichever of them the plan has, and for the nodes run one by one
 * when they cannot run.
 */
#include "predict_buffers.h"

#include <limits.h>
#include <stdlib.h>

/* The earliest node reached from i going up at most `depth` inputs that have i's
 * path as their only reader. */
static int earliest(const cs_model *m, int i, int depth)
{
    int best = i;
    if (depth == 0) return best;
    const cs_layer *l = &m->layers[i];
    for (int k = 0; k < l->n_inputs; k++) {
        const int p = l->inputs[k];
        if (p < 0 || m->layers[p].n_consumers != 1) continue;
        const int e = earliest(m, p, depth - 1);
        if (e < best) best = e;
    }
    return best;
}

int cs_predict_buffers(const cs_model *m, float *const *act, float **out)
{
    const int L = m->n_layers;
    if (L < 1) return 0;
    int *root = malloc((size_t)L * sizeof *root), *from = malloc((size_t)L * sizeof *from),
        *until = malloc((size_t)L * sizeof *until), *order = malloc((size_t)L * sizeof *order);
    float **buf = malloc((size_t)L * sizeof *buf);
    size_t *size = malloc((size_t)L * sizeof *size);
    int *busy = malloc((size_t)L * sizeof *busy);
    int rc = -1;
    if (!root || !from || !until || !order || !buf || !size || !busy) goto done;
    for (int i = 0; i < L; i++) {
        const int in = m->layers[i].n_inputs ? m->layers[i].inputs[0] : -1;
        root[i] = in >= 0 && in < i && act[i] == act[in] ? root[in] : i; /* a view: its input's buffer */
        from[i] = until[i] = INT_MIN;
    }
    /* A buffer's life: the union of its nodes' (a node and its views). */
    for (int i = 0; i < L; i++) {
        const int r = root[i], f = earliest(m, i, 9);
        if (from[r] == INT_MIN || f < from[r]) from[r] = f;
        if (until[r] < i) until[r] = i;
        for (int k = 0; k < m->layers[i].n_inputs; k++) {
            const int p = m->layers[i].inputs[k];
            if (p >= 0 && until[root[p]] < i) until[root[p]] = i;
        }
    }
    const cs_layer *top = &m->layers[L - 1];
    until[root[L - 1]] = INT_MAX;
    if (top->kind == CS_SOFTMAX && top->n_inputs == 1 && top->inputs[0] >= 0) until[root[top->inputs[0]]] = INT_MAX;
    /* The buffers by when they start to be written (insertion sort: a few hundred nodes). */
    int n = 0;
    for (int i = 0; i < L; i++) {
        if (root[i] != i) continue;
        int at = n++;
        for (; at > 0 && from[order[at - 1]] > from[i]; at--) order[at] = order[at - 1];
        order[at] = i;
    }
    /* Each takes the smallest free buffer that holds it, else its own. */
    int pool = 0;
    for (int k = 0; k < n; k++) {
        const int i = order[k];
        const size_t need = cs_shape_size(m->layers[i].out);
        int best = -1;
        if (until[i] != INT_MAX)
            for (int b = 0; b < pool; b++)
                if (busy[b] < from[i] && size[b] >= need && (best < 0 || size[b] < size[best])) best = b;
        if (best < 0) {
            best = pool++;
            buf[best] = act[i];
            size[best] = need;
        }
        busy[best] = until[i];
        out[i] = buf[best];
    }
    for (int i = 0; i < L; i++) out[i] = out[root[i]];
    rc = 0;
done:
    free(root);
    free(from);
    free(until);
    free(order);
    free(buf);
    free(size);
    free(busy);
    return rc;
}
