/*
 * test_preprocess.c - model inputs from images: the Fashion-MNIST path (gray,
 * 0..1, area/bilinear resizing) and Keras' VGG16 caffe mode (PIL nearest, BGR,
 * mean subtraction). Run from the project root (reads tests/data/photos/).
 */
#include <stdlib.h>

#include "image.h"
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

int main(void)
{
    RUN(test_rgb01);
    RUN(test_fmnist_28x28_unchanged);
    RUN(test_fmnist_rgb_and_resizing);
    RUN(test_vgg16_caffe);
    RUN(test_vgg16_photo);
    RUN(test_errors);
    return test_summary("preprocess");
}
