/*
 * test_model_inputs.c - models of several inputs (imported graphs run as they are):
 * nodes read input k as CS_MODEL_INPUT_K(k); a forward takes one buffer per input, a
 * backward reaches the first input's gradient and none of the others', and a model
 * file refuses such a model instead of writing one it cannot read back.
 */
#include "exec.h"
#include "layer_ops.h"
#include "model_file.h"
#include "test.h"

/* y = (x0 + x1) * x2, x1 broadcast per channel, x2 a per-item scalar. */
static cs_model *three_inputs(void)
{
    char err[256];
    cs_model *m = cs_model_new("inputs", (cs_shape){2, 3, 4});
    CHECK(m && cs_model_add_input(m, (cs_shape){1, 1, 4}) == 1 && cs_model_add_input(m, (cs_shape){1, 1, 1}) == 2,
          "inputs");
    cs_layer_config c = {0};
    int in01[2] = {CS_MODEL_INPUT, CS_MODEL_INPUT_K(1)};
    int a = cs_model_add_node(m, "add", CS_ADD, &c, in01, 2, err, sizeof err);
    int in2[2] = {a, CS_MODEL_INPUT_K(2)};
    int b = cs_model_add_node(m, "mul", CS_MULTIPLY, &c, in2, 2, err, sizeof err);
    int bad[2] = {a, CS_MODEL_INPUT_K(3)};
    CHECK(a == 0 && b == 1, "nodes: %s", err);
    CHECK(cs_model_add_node(m, "bad", CS_ADD, &c, bad, 2, err, sizeof err) < 0, "input 3 does not exist");
    CHECK(cs_model_finish(m) == 0, "finish");
    return m;
}

static void test_forward_backward(void)
{
    cs_model *m = three_inputs();
    enum { N = 2, X = 2 * 3 * 4 };
    float x0[N * X], x1[N * 4], x2[N] = {2, -3};
    for (int i = 0; i < N * X; i++) x0[i] = 0.25f * (float)i;
    for (int i = 0; i < N * 4; i++) x1[i] = (float)(i + 1);
    cs_exec *e = cs_exec_new(m, N);
    CHECK(e && cs_exec_enable_input_grad(e) == 0, "exec");
    CHECK(cs_exec_forward(e, x0, N, 0, NULL) == -1, "one buffer is not enough for three inputs");
    const float *in[3] = {x0, x1, x2};
    CHECK(cs_exec_forward_inputs(e, in, N, 0, NULL) == 0, "forward");
    for (int n = 0; n < N; n++)
        for (int i = 0; i < X; i++) {
            float want = (x0[n * X + i] + x1[n * 4 + i % 4]) * x2[n];
            CHECK(e->act[1][n * X + i] == want, "y[%d][%d] = %g, want %g", n, i, e->act[1][n * X + i], want);
        }
    /* d(sum y)/d x0 = x2 per item. */
    for (int i = 0; i < N * X; i++) e->grad[1][i] = 1;
    CHECK(cs_exec_backward(e, -1) == 0, "backward");
    for (int n = 0; n < N; n++)
        for (int i = 0; i < X; i++)
            CHECK(e->input_grad[n * X + i] == x2[n], "dx0[%d][%d] = %g", n, i, e->input_grad[n * X + i]);
    cs_exec_free(e);

    char path[600], err[256];
    snprintf(path, sizeof path, "%s/m.csm", test_scratch_dir("inputs"));
    CHECK(cs_model_save(m, path, err, sizeof err) != 0 && strstr(err, "3 inputs"), "save refused: %s", err);
    cs_model *c = cs_model_clone(m);
    CHECK(c && c->n_extra_inputs == 2 && c->extra_inputs[1].c == 1 && c->extra_inputs[0].c == 4, "clone keeps them");
    cs_model_free(c);
    cs_model_free(m);
}

int main(void)
{
    RUN(test_forward_backward);
    return test_summary("model_inputs");
}
