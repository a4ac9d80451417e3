/*
 * test_onnx_import.c - ONNX models in, against PyTorch and ONNX Runtime.
 *
 * tests/data/models/ holds five small nets exported from PyTorch (ResNet-style with
 * stride-2 projection shortcuts, MobileNetV2-style with depthwise convs, ReLU6 and
 * inverted residuals, SqueezeNet-style with Concat, an EfficientNet-style block with
 * swish and squeeze-and-excitation, and padded average and max pools), each with two
 * input images and PyTorch's logits and Grad-CAM heatmaps on a named node
 * (tests/models/make_models.py; tests/models/run.sh checks the same files against
 * ONNX Runtime). Each is imported, run on the same inputs, and compared: logits to
 * 1e-4, Grad-CAM to 1e-3. Bad files are refused with an error that names the node.
 */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "exec.h"
#include "gradcam.h"
#include "onnx_build.h"
#include "model_file.h"
#include "npy.h"
#include "onnx_import.h"
#include "test.h"

#define DIR "tests/data/models/"

static cs_npy load(const char *name, const char *suffix)
{
    char path[256], err[256];
    snprintf(path, sizeof path, DIR "%s.%s.npy", name, suffix);
    cs_npy a;
    CHECK(cs_npy_read(path, &a, err, sizeof err) == 0, "%s", err);
    return a;
}

/* (n, c, h, w) to (n, h, w, c). */
static float *nchw_to_nhwc(const cs_npy *a)
{
    int n = (int)a->dims[0], c = (int)a->dims[1], h = (int)a->dims[2], w = (int)a->dims[3];
    float *x = malloc(a->count * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++)
                    x[(((size_t)b * h + y) * w + xx) * c + ch] = a->data[(((size_t)b * c + ch) * h + y) * w + xx];
    return x;
}

static void check_model(const char *name)
{
    char path[256], err[512];
    snprintf(path, sizeof path, DIR "%s.json", name);
    json_t *spec = json_load_file(path, 0, NULL);
    CHECK(spec != NULL, "%s: no spec", name);
    if (!spec) return;
    snprintf(path, sizeof path, DIR "%s.onnx", name);
    cs_model *m = cs_onnx_import(path, name, err, sizeof err);
    CHECK(m != NULL, "%s: import: %s", name, err);
    cs_npy in = load(name, "input"), logits = load(name, "logits"), cam = load(name, "gradcam");
    if (!m || !in.data || !logits.data || !cam.data) goto out;
    CHECK(m->input.c == in.dims[1] && m->input.h == in.dims[2] && m->input.w == in.dims[3], "%s: input shape", name);
    const int n = (int)in.dims[0], k = (int)logits.dims[1];
    float *x = nchw_to_nhwc(&in);
    cs_exec *e = cs_exec_new(m, n);
    CHECK(e && cs_exec_forward(e, x, n, 0, NULL) == 0, "%s: forward", name);
    const float *z = e ? cs_exec_logits(e) : NULL;
    CHECK(z != NULL, "%s: logits under the softmax", name);
    double worst = 0;
    for (int i = 0; z && i < n * k; i++)
        if (fabs(z[i] - logits.data[i]) > worst) worst = fabs(z[i] - logits.data[i]);
    double tol = json_number_value(json_object_get(json_object_get(spec, "tolerance"), "logits"));
    CHECK(worst <= tol, "%s: logits differ from PyTorch's by %.2e (tolerance %.0e)", name, worst, tol);
    fprintf(stderr, "    %s: %d nodes, logits within %.1e of PyTorch\n", name, m->n_layers, worst);

    /* Grad-CAM on the node PyTorch's reference used, one image at a time. */
    json_t *gc = json_object_get(spec, "gradcam");
    const char *node = json_string_value(json_object_get(gc, "node"));
    char ours[CS_NAME_MAX] = "";
    if (node) cs_onnx_node_name(node, ours, sizeof ours);
    int li = node ? cs_model_find_layer(m, ours) : -1;
    CHECK(li >= 0, "%s: no node named %s", name, node ? node : "?");
    cs_exec *e1 = cs_exec_new(m, 1);
    const size_t per = cs_shape_size(m->input);
    double cam_worst = 0;
    for (int b = 0; li >= 0 && e1 && b < n; b++) {
        int cls = (int)json_integer_value(json_array_get(json_object_get(gc, "classes"), (size_t)b));
        cs_gradcam_result r;
        CHECK(cs_gradcam(e1, x + b * per, li, cls, CS_SCORE_LOGIT, &r, err, sizeof err) == 0, "%s: %s", name, err);
        int h = (int)cam.dims[1], w = (int)cam.dims[2];
        CHECK(r.h == h && r.w == w, "%s: heatmap %dx%d, PyTorch's %dx%d", name, r.h, r.w, h, w);
        for (int i = 0; r.heatmap && r.h == h && r.w == w && i < h * w; i++) {
            double d = fabs(r.heatmap[i] - cam.data[(size_t)b * h * w + i]);
            if (d > cam_worst) cam_worst = d;
        }
        free(r.heatmap);
    }
    double cam_tol = json_number_value(json_object_get(json_object_get(spec, "tolerance"), "gradcam"));
    CHECK(cam_worst <= cam_tol, "%s: Grad-CAM differs from PyTorch's by %.2e", name, cam_worst);

    /* The imported model as a model file: the same outputs. */
    char csm[] = "/tmp/convscope-onnx-XXXXXX";
    int fd = mkstemp(csm);
    if (fd >= 0) close(fd);
    CHECK(cs_model_save(m, csm, err, sizeof err) == 0, "%s: save: %s", name, err);
    cs_model *back = cs_model_load(csm, err, sizeof err);
    unlink(csm);
    CHECK(back != NULL, "%s: load: %s", name, err);
    if (back && e) {
        cs_exec *e2 = cs_exec_new(back, n);
        cs_exec_forward(e2, x, n, 0, NULL);
        int top = m->n_layers - 1;
        CHECK(!memcmp(e->act[top], e2->act[top], (size_t)n * k * sizeof(float)), "%s: a .csm round trip changed the outputs", name);
        cs_exec_free(e2);
    }
    cs_model_free(back);
    cs_exec_free(e1);
    cs_exec_free(e);
    free(x);
out:
    cs_npy_free(&in), cs_npy_free(&logits), cs_npy_free(&cam);
    cs_model_free(m);
    json_decref(spec);
}

static void test_resnet(void) { check_model("resnet"); }
static void test_mobilenetv2(void) { check_model("mobilenetv2"); }
static void test_squeezenet(void) { check_model("squeezenet"); }
static void test_efficientnet(void) { check_model("efficientnet"); }
static void test_avgpool(void) { check_model("avgpool"); }

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    if (b && fread(b, 1, *len, f) != *len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

/* A truncated file at many lengths: refused every time, never a crash. */
static void test_truncated_refused(void)
{
    size_t len;
    unsigned char *b = slurp(DIR "squeezenet.onnx", &len);
    CHECK(b != NULL, "read squeezenet.onnx");
    if (!b) return;
    int refused = 0, tried = 0;
    for (size_t cut = 0; cut < len; cut += len / 97 + 1) {
        char err[512] = "";
        cs_model *m = cs_onnx_import_buffer(b, cut, "cut", err, sizeof err);
        tried++;
        refused += m == NULL && err[0];
        cs_model_free(m);
    }
    CHECK(refused == tried, "%d of %d truncations refused with a message", refused, tried);
    free(b);
}

/* x (batch, 2, 6, 6) -> conv a (2 -> 2) and conv b (2 -> `b_out`) -> `op`(a, b) -> y. */
static void two_branches(spec *s, const char *op, int b_out)
{
    static const float w[2 * 2 * 9 + 3 * 2 * 9] = {0};
    spec_init(s);
    s->inputs[s->n_inputs++] = vinfo("x", 4, (int64_t[]){-1, 2, 6, 6});
    s->outputs[s->n_outputs++] = vinfo("y", -1, NULL);
    s->inits[s->n_inits++] = tensor_f("Wa", 4, (int64_t[]){2, 2, 3, 3}, w, 36, 1);
    s->inits[s->n_inits++] = tensor_f("Wb", 4, (int64_t[]){b_out, 2, 3, 3}, w, (size_t)b_out * 18, 1);
    s->nodes[s->n_nodes++] = node("Conv", "conv_a", "x,Wa", "a", NULL);
    s->nodes[s->n_nodes++] = node("Conv", "conv_b", "x,Wb", "b", NULL);
    s->nodes[s->n_nodes++] = node(op, "join", "a,b", "y", NULL);
}

/* The import's error for the packed model, which must name every given fragment. */
static void expect_refused(spec *s, const char *what, ...)
{
    size_t len;
    uint8_t *buf = pack(s, &len);
    char err[512] = "";
    cs_model *m = cs_onnx_import_buffer(buf, len, "bad", err, sizeof err);
    CHECK(m == NULL, "%s: accepted", what);
    cs_model_free(m);
    va_list ap;
    va_start(ap, what);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        CHECK(strstr(err, frag) != NULL, "%s: '%s' is not in the error: %s", what, frag, err);
    va_end(ap);
    pool_free();
}

/* Each bad model gets one error naming the node (and the op or value) at fault. */
static void test_bad_models_refused(void)
{
    spec s;
    two_branches(&s, "Add", 3);
    expect_refused(&s, "a shape mismatch", "'join'", "Add", NULL);
    two_branches(&s, "Resize", 2);
    expect_refused(&s, "an unknown op", "'join'", "Resize", "not supported", NULL);
    two_branches(&s, "Add", 2);
    s.nodes[1] = node("Conv", "conv_b", "x,Wmissing", "b", NULL);
    expect_refused(&s, "a missing initializer", "conv_b", "Wmissing", NULL);
    two_branches(&s, "Add", 2);
    s.nodes[0] = node("Conv", "conv_a", "y,Wa", "a", NULL);
    expect_refused(&s, "a cycle", "cycle", NULL);
    two_branches(&s, "Add", 2);
    s.inits[0] = tensor_f("Wa", 4, (int64_t[]){50000, 50000, 3, 3}, (float[]){1, 2, 3, 4}, 4, 1);
    expect_refused(&s, "a 10 GB declared tensor", "'Wa'", NULL);
    two_branches(&s, "Add", 2);
    s.nodes[0] = node("Conv", "conv_a", "x,Wa", "a", attr_string("auto_pad", "SOMETIMES"), NULL);
    expect_refused(&s, "an unknown attribute value", "'conv_a'", "auto_pad", NULL);
    two_branches(&s, "Add", 2);
    s.nodes[0] = node("Conv", "conv_a", "x,Wa", "a", attr_int("group", 3), NULL);
    expect_refused(&s, "groups that do not divide the channels", "'conv_a'", "groups", NULL);
    two_branches(&s, "Add", 2);
    s.inputs[0] = vinfo("x", 4, (int64_t[]){-1, 2, -1, -1});
    expect_refused(&s, "an input of unknown size", "input 'x'", NULL);
}

int main(void)
{
    RUN(test_bad_models_refused);
    RUN(test_resnet);
    RUN(test_mobilenetv2);
    RUN(test_squeezenet);
    RUN(test_efficientnet);
    RUN(test_avgpool);
    RUN(test_truncated_refused);
    return test_summary("onnx_import");
}
