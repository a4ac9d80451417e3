/*
 * test_preprocess.c - model inputs from images: the Fashion-MNIST path (gray,
 * 0..1, area/bilinear resizing) and Keras' VGG16 caffe mode (PIL nearest, BGR,
 * mean subtraction); the described pipeline's presets (tf, torch), colour orders,
 * centre crops, filters and its JSON, with values worked out by hand; what a model
 * gets when nothing says (a Rescaling node at the input: raw pixels). Run from the
 * project root (reads tests/data/photos/).
 */
#include <stdlib.h>

#include "image.h"
#include "model.h"
#include "preprocess.h"
#include "test.h"

static void test_fmnist_28x28_unchanged(void)
{
    cs_image img;
    cs_image_alloc(&img, 28, 28, 1);
    for (int i = 0; i < 28 * 28; i++)
        img.px[i] = (uint8_t)(i * 7);
    float out[28 * 28];
    char err[128] = "";
    CHECK(cs_preprocess_image("fmnist", &img, 28, 28, 1, out, err, sizeof err) == 0, "%s", err);
    int same = 1;
    for (int i = 0; i < 28 * 28; i++)
        same &= out[i] == img.px[i] / 255.f;
    CHECK(same, "28x28 gray must come through as px / 255 exactly");
    CHECK(out[0] == 0.f && out[36] == 252 / 255.f, "known values");
    cs_image_free(&img);
}

static void test_fmnist_rgb_and_resizing(void)
{
    /* RGB -> PIL luma: (255,0,0) -> 76, (10,20,30) -> 18 */
    cs_image img;
    cs_image_alloc(&img, 2, 1, 3);
    const uint8_t px[6] = {255, 0, 0, 10, 20, 30};
    memcpy(img.px, px, 6);
    float out2[2];
    CHECK(cs_preprocess_image("fmnist", &img, 1, 2, 1, out2, NULL, 0) == 0, "rgb");
    CHECK(out2[0] == 76 / 255.f && out2[1] == 18 / 255.f, "rgb -> gray %g %g", out2[0] * 255,
          out2[1] * 255);
    cs_image_free(&img);

    /* 56x56 -> 28x28: every output is the mean of its 2x2 block */
    cs_image_alloc(&img, 56, 56, 1);
    for (int y = 0; y < 56; y++)
        for (int x = 0; x < 56; x++)
            img.px[y * 56 + x] = (uint8_t)((x * 3 + y * 5) % 256);
    float out[28 * 28];
    CHECK(cs_preprocess_gray01(&img, 28, 28, out, NULL, 0) == 0, "shrink");
    for (int y = 0; y < 28; y += 9)
        for (int x = 0; x < 28; x += 5) {
            const uint8_t *p = img.px + (2 * y) * 56 + 2 * x;
            float mean = (p[0] + p[1] + p[56] + p[57]) / 4.f / 255.f;
            CHECK_NEAR(out[y * 28 + x], mean, 1e-6, "2x2 mean");
        }
    cs_image_free(&img);

    /* 14x14 -> 28x28: bilinear, same as resizing the 0..1 plane */
    cs_image_alloc(&img, 14, 14, 1);
    float plane[14 * 14], want[28 * 28];
    for (int i = 0; i < 14 * 14; i++) {
        img.px[i] = (uint8_t)(i * 13);
        plane[i] = img.px[i] / 255.f;
    }
    cs_resize_bilinear_f32(plane, 14, 14, want, 28, 28);
    CHECK(cs_preprocess_gray01(&img, 28, 28, out, NULL, 0) == 0, "enlarge");
    CHECK(memcmp(out, want, sizeof want) == 0, "enlarge = bilinear");
    cs_image_free(&img);
}

static void test_vgg16_caffe(void)
{
    /* 2x2 RGB -> 4x4: PIL nearest picks 0 0 1 1 along each axis; BGR minus mean */
    cs_image img;
    cs_image_alloc(&img, 2, 2, 3);
    const uint8_t px[12] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 200, 210, 220};
    memcpy(img.px, px, 12);
    float out[4 * 4 * 3];
    char err[128] = "";
    CHECK(cs_preprocess_image("vgg16", &img, 4, 4, 3, out, err, sizeof err) == 0, "%s", err);
    /* out (y 0, x 0) from src (0, 0) = RGB (10, 20, 30) */
    CHECK_NEAR(out[0], 30 - 103.939f, 1e-5, "B");
    CHECK_NEAR(out[1], 20 - 116.779f, 1e-5, "G");
    CHECK_NEAR(out[2], 10 - 123.68f, 1e-5, "R");
    /* out (y 1, x 2) from src (0, 1) = (40, 50, 60); out (3, 3) from (1, 1) */
    const float *p = out + (1 * 4 + 2) * 3;
    CHECK(p[0] == 60 - 103.939f && p[1] == 50 - 116.779f && p[2] == 40 - 123.68f, "(1,2)");
    p = out + (3 * 4 + 3) * 3;
    CHECK(p[0] == 220 - 103.939f && p[2] == 200 - 123.68f, "(3,3)");
    p = out + (2 * 4 + 1) * 3; /* from (1, 0) = (70, 80, 90) */
    CHECK(p[0] == 90 - 103.939f && p[1] == 80 - 116.779f, "(2,1)");
    cs_image_free(&img);

    /* a gray image is replicated into B = G = R before the mean */
    cs_image_alloc(&img, 1, 1, 1);
    img.px[0] = 200;
    float one[3];
    CHECK(cs_preprocess_caffe(&img, 1, 1, one, NULL, 0) == 0, "gray caffe");
    CHECK(one[0] == 200 - 103.939f && one[1] == 200 - 116.779f && one[2] == 200 - 123.68f,
          "gray caffe values");
    cs_image_free(&img);
}

static void test_vgg16_photo(void)
{
    FILE *f = fopen("tests/data/photos/chelsea.png", "rb");
    CHECK(f != NULL, "chelsea.png (run from the project root)");
    if (!f)
        return;
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cs_image img;
    CHECK(cs_image_decode(buf, len, 0, &img, NULL, 0) == CS_IMG_OK, "decode");
    if (!img.px)
        return;
    float *out = malloc(sizeof(float) * 224 * 224 * 3);
    CHECK(cs_preprocess_image("vgg16", &img, 224, 224, 3, out, NULL, 0) == 0, "preprocess");
    /* nearest: x 100 <- floor(100.5 * 451/224) = 202, y 50 <- floor(50.5 * 300/224) = 67 */
    const uint8_t *src = img.px + ((size_t)67 * 451 + 202) * 3;
    const float *p = out + ((size_t)50 * 224 + 100) * 3;
    CHECK(p[0] == src[2] - 103.939f && p[1] == src[1] - 116.779f && p[2] == src[0] - 123.68f,
          "photo pixel");
    free(out);

    float small[28 * 28];
    CHECK(cs_preprocess_image("fmnist", &img, 28, 28, 1, small, NULL, 0) == 0, "photo -> 28x28");
    int in_range = 1;
    for (int i = 0; i < 28 * 28; i++)
        in_range &= small[i] >= 0.f && small[i] <= 1.f;
    CHECK(in_range, "0..1");
    cs_image_free(&img);
}

static void test_errors(void)
{
    float out[4];
    char err[128] = "";
    CHECK(cs_preprocess_image("fmnist", NULL, 2, 2, 1, out, err, sizeof err) == -1 && err[0],
          "NULL image");
    cs_image img;
    cs_image_alloc(&img, 2, 2, 1);
    err[0] = 0;
    CHECK(cs_preprocess_image("fmnist", &img, 0, 2, 1, out, err, sizeof err) == -1 && err[0],
          "zero size");
    CHECK(cs_preprocess_image("vgg16", &img, 2, 2, 3, NULL, NULL, 0) == -1, "NULL out");
    cs_image_free(&img);
}

/* A three-channel model that is not VGG16 gets RGB scaled to 0..1; a gray upload is
 * replicated; a 2x2 average when halving. */
static void test_rgb01(void)
{
    cs_image img;
    cs_image_alloc(&img, 2, 1, 3);
    const uint8_t px[6] = {255, 0, 0, 0, 128, 255};
    memcpy(img.px, px, 6);
    float out[6];
    CHECK(cs_preprocess_image("resnet", &img, 1, 2, 3, out, NULL, 0) == 0, "rgb01");
    CHECK(out[0] == 1.f && out[1] == 0.f && out[2] == 0.f && out[3] == 0.f && out[4] == 128 / 255.f && out[5] == 1.f,
          "rgb01 values %g %g %g %g %g %g", out[0], out[1], out[2], out[3], out[4], out[5]);
    cs_image_free(&img);
    cs_image_alloc(&img, 2, 2, 1);
    const uint8_t g[4] = {0, 100, 200, 60};
    memcpy(img.px, g, 4);
    CHECK(cs_preprocess_image("resnet", &img, 1, 1, 3, out, NULL, 0) == 0, "gray to rgb01");
    CHECK(fabsf(out[0] - 90 / 255.f) < 1e-6f && out[0] == out[1] && out[1] == out[2], "mean of the four: %g",
          out[0] * 255);
    CHECK(cs_preprocess_image("resnet", &img, 1, 1, 2, out, NULL, 0) == -1, "two channels refused");
    cs_image_free(&img);
}


/* px * (1/255) computed in double and rounded once is px / 255.f for every pixel, so
 * the described unit pipeline is the old one bit for bit; also through _pixels. */
static void test_unit_exact(void)
{
    cs_image img;
    cs_image_alloc(&img, 16, 16, 1);
    for (int i = 0; i < 256; i++) img.px[i] = (uint8_t)i;
    cs_preprocess p;
    CHECK(cs_preprocess_preset("unit", 1, &p, NULL, 0) == 0, "unit preset");
    float out[256], flat[256];
    CHECK(cs_preprocess_apply(&p, &img, 16, 16, 1, out, NULL, 0) == 0, "apply");
    cs_preprocess_pixels(&p, img.px, 256, flat);
    int same = 1;
    for (int i = 0; i < 256; i++) same &= out[i] == i / 255.f && flat[i] == out[i];
    CHECK(same, "every pixel value comes out as px / 255.f");
    cs_image_free(&img);
}

/* Keras' tf and torch modes on one RGB pixel, and caffe's B, G, R order. */
static void test_presets(void)
{
    cs_image img;
    cs_image_alloc(&img, 1, 1, 3);
    img.px[0] = 255, img.px[1] = 51, img.px[2] = 0;
    float out[3];
    cs_preprocess p;
    char err[200] = "";
    CHECK(cs_preprocess_preset("tf", 3, &p, err, sizeof err) == 0, "tf: %s", err);
    CHECK(cs_preprocess_apply(&p, &img, 1, 1, 3, out, err, sizeof err) == 0, "tf apply: %s", err);
    /* x / 127.5 - 1 */
    CHECK_NEAR(out[0], 1.0, 1e-7, "tf R");
    CHECK_NEAR(out[1], -0.6, 1e-7, "tf G");
    CHECK_NEAR(out[2], -1.0, 1e-7, "tf B");
    CHECK(cs_preprocess_preset("torch", 3, &p, NULL, 0) == 0, "torch");
    CHECK(cs_preprocess_apply(&p, &img, 1, 1, 3, out, NULL, 0) == 0, "torch apply");
    /* (x / 255 - mean) / std with ImageNet's mean and std */
    CHECK_NEAR(out[0], (1 - 0.485) / 0.229, 1e-5, "torch R");
    CHECK_NEAR(out[1], (0.2 - 0.456) / 0.224, 1e-5, "torch G");
    CHECK_NEAR(out[2], (0 - 0.406) / 0.225, 1e-5, "torch B");
    CHECK(cs_preprocess_preset("caffe", 3, &p, NULL, 0) == 0 && p.color == CS_COLOR_BGR &&
              p.resize == CS_RESIZE_NEAREST,
          "caffe: BGR, nearest");
    CHECK(cs_preprocess_apply(&p, &img, 1, 1, 3, out, NULL, 0) == 0, "caffe apply");
    CHECK(out[0] == 0 - 103.939f && out[1] == 51 - 116.779f && out[2] == 255 - 123.68f, "caffe B, G, R");
    err[0] = 0;
    CHECK(cs_preprocess_preset("torch", 1, &p, err, sizeof err) == -1 && strstr(err, "gray"), "torch on gray: %s",
          err);
    CHECK(cs_preprocess_preset("imagenet", 3, &p, err, sizeof err) == -1 && strstr(err, "unknown mode"), "%s", err);
    CHECK(cs_preprocess_preset("unit", 4, &p, err, sizeof err) == -1 && strstr(err, "4 channels"), "%s", err);
    cs_image_free(&img);
}

/* A centre crop keeps the aspect: a 4x2 picture into 2x2 takes columns 1 and 2; crop
 * 0.5 of a 4x4 takes its middle 2x2; no resampling when the region is the size. */
static void test_crop(void)
{
    cs_image img;
    cs_image_alloc(&img, 4, 2, 1);
    for (int i = 0; i < 8; i++) img.px[i] = (uint8_t)(10 * i);
    cs_preprocess p;
    cs_preprocess_preset("raw", 1, &p, NULL, 0);
    p.fit = CS_FIT_CROP;
    float out[4];
    CHECK(cs_preprocess_apply(&p, &img, 2, 2, 1, out, NULL, 0) == 0, "crop");
    CHECK(out[0] == 10 && out[1] == 20 && out[2] == 50 && out[3] == 60, "centre columns: %g %g %g %g", out[0], out[1],
          out[2], out[3]);
    cs_image r;
    CHECK(cs_preprocess_region(&p, &img, 2, 2, &r) == CS_IMG_OK && r.w == 2 && r.h == 2 && r.px[0] == 10, "region");
    cs_image_free(&r);
    cs_image_free(&img);
    cs_image_alloc(&img, 4, 4, 1);
    for (int i = 0; i < 16; i++) img.px[i] = (uint8_t)i;
    p.crop = 0.5f;
    CHECK(cs_preprocess_apply(&p, &img, 2, 2, 1, out, NULL, 0) == 0, "crop 0.5");
    CHECK(out[0] == 5 && out[1] == 6 && out[2] == 9 && out[3] == 10, "middle 2x2: %g %g %g %g", out[0], out[1], out[2],
          out[3]);
    /* Stretch takes everything: 4x4 -> 2x2 area means. */
    p.fit = CS_FIT_STRETCH;
    CHECK(cs_preprocess_apply(&p, &img, 2, 2, 1, out, NULL, 0) == 0, "stretch");
    CHECK(out[0] == (0 + 1 + 4 + 5) / 4.f && out[3] == (10 + 11 + 14 + 15) / 4.f, "area means %g %g", out[0], out[3]);
    cs_image_free(&img);
}

/* Bilinear with half-pixel centres: 2 -> 4 samples at -0.25, 0.25, 0.75, 1.25 (the
 * ends clamped); nearest 4 -> 2 picks floor((d + 0.5) * 2) = 1 and 3. */
static void test_filters(void)
{
    cs_image img;
    cs_image_alloc(&img, 2, 1, 1);
    img.px[0] = 0, img.px[1] = 200;
    cs_preprocess p;
    cs_preprocess_preset("raw", 1, &p, NULL, 0);
    p.resize = CS_RESIZE_BILINEAR;
    float out[4];
    CHECK(cs_preprocess_apply(&p, &img, 1, 4, 1, out, NULL, 0) == 0, "bilinear");
    CHECK(out[0] == 0 && out[1] == 50 && out[2] == 150 && out[3] == 200, "bilinear %g %g %g %g", out[0], out[1], out[2],
          out[3]);
    cs_image_free(&img);
    cs_image_alloc(&img, 4, 1, 1);
    for (int i = 0; i < 4; i++) img.px[i] = (uint8_t)(i * 40);
    p.resize = CS_RESIZE_NEAREST;
    CHECK(cs_preprocess_apply(&p, &img, 1, 2, 1, out, NULL, 0) == 0 && out[0] == 40 && out[1] == 120, "nearest %g %g",
          out[0], out[1]);
    cs_image_free(&img);
}

static json_t *parse(const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    if (!o) exit(99);
    return o;
}

/* A sidecar's preprocessing over the inferred pipeline: a mode then fields on top;
 * every wrong field refused by name; the JSON and the header line say it back. */
static void test_json(void)
{
    cs_preprocess p, base;
    cs_preprocess_preset("unit", 3, &base, NULL, 0);
    char err[300] = "";
    p = base;
    json_t *o = parse("{\"mode\": \"caffe\", \"resize\": \"bilinear\", \"crop\": 0.875}");
    CHECK(cs_preprocess_from_json(o, 3, 224, 224, &p, err, sizeof err) == 0, "caffe + fields: %s", err);
    CHECK(!strcmp(p.mode, "caffe") && p.color == CS_COLOR_BGR && p.resize == CS_RESIZE_BILINEAR &&
              p.fit == CS_FIT_CROP && p.crop == 0.875f && !strcmp(p.source, "sidecar"),
          "caffe, bilinear, crop 0.875 from the sidecar");
    json_decref(o);
    p = base;
    o = parse("{\"color\": \"bgr\", \"scale\": 1, \"mean\": [1, 2, 3], \"std\": 2, \"size\": [8, 6]}");
    CHECK(cs_preprocess_from_json(o, 3, 8, 6, &p, err, sizeof err) == 0, "custom: %s", err);
    CHECK(!strcmp(p.mode, "custom") && p.mean[2] == 3 && p.std[1] == 2 && p.scale == 1, "custom values");
    cs_image img;
    cs_image_alloc(&img, 1, 1, 3);
    img.px[0] = 10, img.px[1] = 20, img.px[2] = 31;
    float out[3];
    CHECK(cs_preprocess_apply(&p, &img, 1, 1, 3, out, NULL, 0) == 0, "apply custom");
    /* B first: (31 - 1) / 2, (20 - 2) / 2, (10 - 3) / 2 */
    CHECK(out[0] == 15 && out[1] == 9 && out[2] == 3.5f, "bgr custom %g %g %g", out[0], out[1], out[2]);
    cs_image_free(&img);
    char line[300];
    cs_preprocess_describe(&p, 3, 8, 6, line, sizeof line);
    CHECK(!strcmp(line, "mode=custom; color=bgr; size=8x6; fit=stretch; resize=area; scale=1; mean=1,2,3; std=2,2,2; "
                        "source=sidecar"),
          "header line: %s", line);
    json_t *j = cs_preprocess_to_json(&p, 3, 8, 6);
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "color")), "bgr") &&
              json_array_size(json_object_get(j, "mean")) == 3 &&
              json_integer_value(json_array_get(json_object_get(j, "size"), 1)) == 6,
          "JSON");
    json_decref(j);
    json_decref(o);
    static const struct {
        const char *json, *says;
        int channels;
    } bad[] = {
        {"{\"colour\": \"rgb\"}", "unknown key 'colour'", 3},
        {"{\"color\": \"gray\"}", "does not fit", 3},
        {"{\"color\": \"rgb\"}", "does not fit", 1},
        {"{\"resize\": \"cubic\"}", "nearest, bilinear or area", 3},
        {"{\"std\": [1, 0, 1]}", "above 0", 3},
        {"{\"mean\": [1, 2]}", "list of 3 numbers", 3},
        {"{\"scale\": 0}", "other than 0", 3},
        {"{\"size\": [224, 224]}", "model takes 8x6", 3},
        {"{\"crop\": 2}", "at most 1", 3},
        {"{\"mode\": \"tf\"}", "colour models", 1},
        {"[1]", "expected an object", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = base;
        o = parse(bad[i].json);
        err[0] = 0;
        int rc = cs_preprocess_from_json(o, bad[i].channels, 8, 6, &p, err, sizeof err);
        CHECK(rc == -1 && strstr(err, bad[i].says) && p.scale == base.scale && p.color == base.color,
              "%s refused: %s", bad[i].json, err);
        json_decref(o);
    }
}

/* What a model gets by itself: gray unit for the notebook's network, caffe for VGG16,
 * raw pixels when a Rescaling node reads the input. */
static void test_infer(void)
{
    cs_model *f = cs_model_build_fmnist();
    CHECK(f && !strcmp(f->preprocess.mode, "unit") && f->preprocess.color == CS_COLOR_GRAY &&
              !strcmp(f->preprocess.source, "default"),
          "fmnist: gray unit by default");
    cs_model_free(f);
    cs_model *v = cs_model_build_vgg16();
    CHECK(v && !strcmp(v->preprocess.mode, "caffe") && v->preprocess.resize == CS_RESIZE_NEAREST, "vgg16: caffe");
    cs_model_free(v);
    cs_model *m = cs_model_new("scaled", (cs_shape){8, 8, 3});
    char err[200];
    cs_layer_config r = {.scale = 1 / 255.f}, d = {.units = 4, .activation = CS_ACT_SOFTMAX};
    CHECK(cs_model_add(m, "rescale", CS_RESCALING, &r, err, sizeof err) >= 0 &&
              cs_model_add(m, "flat", CS_FLATTEN, &(cs_layer_config){0}, err, sizeof err) >= 0 &&
              cs_model_add(m, "out", CS_DENSE, &d, err, sizeof err) >= 0 && cs_model_finish(m) == 0,
          "build: %s", err);
    CHECK(!strcmp(m->preprocess.mode, "raw") && m->preprocess.scale == 1 && m->preprocess.color == CS_COLOR_RGB &&
              !strcmp(m->preprocess.source, "inferred") && strstr(m->preprocess.why, "rescale"),
          "a Rescaling at the input: raw pixels (%s, %s)", m->preprocess.mode, m->preprocess.why);
    cs_model *c = cs_model_clone(m);
    CHECK(c && !strcmp(c->preprocess.mode, "raw"), "a clone keeps it");
    cs_model_free(c);
    cs_model_free(m);
}

int main(void)
{
    RUN(test_rgb01);
    RUN(test_fmnist_28x28_unchanged);
    RUN(test_fmnist_rgb_and_resizing);
    RUN(test_vgg16_caffe);
    RUN(test_vgg16_photo);
    RUN(test_errors);
    RUN(test_unit_exact);
    RUN(test_presets);
    RUN(test_crop);
    RUN(test_filters);
    RUN(test_json);
    RUN(test_infer);
    return test_summary("preprocess");
}
