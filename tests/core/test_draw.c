/*
 * test_draw.c - tile grids (size, placement, value mapping, strided layouts),
 * the JET colour map against OpenCV's values, and the Grad-CAM pictures.
 */
#include <math.h>
#include <stdlib.h>

#include "draw.h"
#include "test.h"

static const uint8_t *pixel(const cs_image *img, int x, int y)
{
    return img->px + ((size_t)y * img->w + x) * img->c;
}

static void test_jet_matches_opencv(void)
{
    /* cv2.applyColorMap(np.uint8([[v]]), cv2.COLORMAP_JET) gives B, G, R; here R, G, B. */
    const struct {
        int v;
        uint8_t rgb[3];
    } want[] = {
        {0, {0, 0, 128}},     {1, {0, 0, 132}},     {31, {0, 0, 252}},   {32, {0, 0, 255}},
        {33, {0, 4, 255}},    {64, {0, 128, 255}},  {96, {2, 255, 254}}, {127, {126, 255, 130}},
        {128, {130, 255, 126}}, {159, {254, 255, 1}}, {160, {255, 252, 0}}, {192, {255, 124, 0}},
        {223, {255, 0, 0}},   {224, {252, 0, 0}},   {254, {132, 0, 0}},  {255, {128, 0, 0}},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        uint8_t rgb[3];
        cs_colormap_jet((uint8_t)want[i].v, rgb);
        CHECK(memcmp(rgb, want[i].rgb, 3) == 0, "jet(%d) = %d %d %d, want %d %d %d", want[i].v,
              rgb[0], rgb[1], rgb[2], want[i].rgb[0], want[i].rgb[1], want[i].rgb[2]);
    }
    /* the map is mirror-symmetric (r(v) = b(255 - v)) up to OpenCV's float rounding,
     * which breaks the tie differently on the two sides (jet(96) r = 2, jet(159) b = 1) */
    for (int v = 0; v < 256; v++) {
        uint8_t a[3], b[3];
        cs_colormap_jet((uint8_t)v, a);
        cs_colormap_jet((uint8_t)(255 - v), b);
        CHECK(abs(a[0] - b[2]) <= 1 && abs(a[1] - b[1]) <= 1, "symmetry at %d", v);
    }
}

static void test_tiles_size_and_placement(void)
{
    /* one NHWC activation, 2 x 3 pixels, 5 channels; channel k, pixel (y, x) = k + y*10 + x */
    enum { H = 2, W = 3, K = 5 };
    float act[H * W * K];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < K; k++)
                act[(y * W + x) * K + k] = (float)(k + y * 10 + x);
    cs_tiles t = {act, K, H, W, 1, 1, W * K, K, 0};
    /* global range 0..25: value v -> floor(256 * v / 25) */
    cs_image *img = cs_draw_tiles(&t, 3, 2, 0, 0.f, 25.f, 1);
    CHECK(img != NULL, "grid");
    if (!img)
        return;
    /* rows = ceil(5/3) = 2; W = 3*3*2 + 4*1 = 22; H = 2*2*2 + 3*1 = 11 */
    CHECK(img->w == 22 && img->h == 11 && img->c == 1, "size %dx%d", img->w, img->h);
    CHECK(pixel(img, 0, 0)[0] == CS_DRAW_GAP_COLOR, "gap corner");
    CHECK(pixel(img, 7, 3)[0] == CS_DRAW_GAP_COLOR, "gap between columns");
    CHECK(pixel(img, 21, 10)[0] == CS_DRAW_GAP_COLOR, "unused sixth cell is background");
    /* tile 4 (row 1, col 1), pixel (y 1, x 2) = 4 + 10 + 2 = 16 -> floor(256*16/25) = 163;
     * block corner (1 + 1*(6+1) + 2*2, 1 + 1*(4+1) + 1*2) = (12, 8), 2x2 block */
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++)
            CHECK(pixel(img, 12 + dx, 8 + dy)[0] == 163, "tile 4 (1,2) at (%d,%d) = %d", 12 + dx,
                  8 + dy, pixel(img, 12 + dx, 8 + dy)[0]);
    CHECK(pixel(img, 14, 8)[0] == CS_DRAW_GAP_COLOR, "right of tile 4");
    /* tile 0 pixel (0,0) = 0 -> 0 at (1,1) */
    CHECK(pixel(img, 1, 1)[0] == 0, "tile 0 origin");
    cs_image_destroy(img);

    /* per-tile: each tile spans k..k+12, so (0,0) -> 0 and (1,2) -> 255 in every tile */
    img = cs_draw_tiles(&t, 5, 1, 1, 0.f, 0.f, 0);
    CHECK(img && img->w == 15 && img->h == 2, "per-tile size");
    if (img) {
        for (int i = 0; i < 5; i++) {
            CHECK(pixel(img, i * 3, 0)[0] == 0, "tile %d min", i);
            CHECK(pixel(img, i * 3 + 2, 1)[0] == 255, "tile %d max", i);
            /* (0,1) = k + 1 -> floor(256 * 1/12) = 21 */
            CHECK(pixel(img, i * 3 + 1, 0)[0] == 21, "tile %d (0,1)", i);
        }
        cs_image_destroy(img);
    }
}

static void test_tiles_value_mapping(void)
{
    float v[7] = {0.f, 0.5f, 1.f, -1.f, 2.f, NAN, 0.25f};
    cs_tiles t = {v, 7, 1, 1, 1, 1, 0, 0, 0};
    cs_image *img = cs_draw_tiles(&t, 7, 1, 0, 0.f, 1.f, 0);
    CHECK(img && img->w == 7 && img->h == 1, "1x1 tiles");
    if (img) {
        const uint8_t want[7] = {0, 128, 255, 0, 255, 0, 64};
        CHECK(memcmp(img->px, want, 7) == 0, "mapping %d %d %d %d %d %d %d", img->px[0],
              img->px[1], img->px[2], img->px[3], img->px[4], img->px[5], img->px[6]);
        cs_image_destroy(img);
    }
    /* constant tiles: 0, not NaN garbage, both per tile and with lo == hi */
    float c[4] = {3.f, 3.f, 3.f, 3.f};
    cs_tiles tc = {c, 1, 2, 2, 1, 4, 2, 1, 0};
    img = cs_draw_tiles(&tc, 1, 1, 1, 0.f, 0.f, 0);
    CHECK(img && img->px[0] == 0 && img->px[3] == 0, "constant tile per-tile -> 0");
    cs_image_destroy(img);
    img = cs_draw_tiles(&tc, 1, 1, 0, 3.f, 3.f, 0);
    CHECK(img && img->px[0] == 0, "lo == hi -> 0");
    cs_image_destroy(img);
    /* bad arguments */
    CHECK(cs_draw_tiles(NULL, 1, 1, 0, 0, 1, 0) == NULL, "NULL tiles");
    CHECK(cs_draw_tiles(&t, 0, 1, 0, 0, 1, 0) == NULL, "cols 0");
    CHECK(cs_draw_tiles(&t, 1, 0, 0, 0, 1, 0) == NULL, "scale 0");
    CHECK(cs_draw_tiles(&t, 1, 1, 0, 0, 1, -1) == NULL, "negative gap");
    CHECK(cs_draw_tiles(&t, 1, 1 << 20, 0, 0, 1, 0) == NULL, "absurd scale");
}

static void test_tiles_keras_kernel_and_rgb(void)
{
    /* Keras conv kernel (kh 3, kw 3, in 2, out 4): element (i, j, c, o) at
     * ((i*3 + j)*2 + c)*4 + o; draw input channel 1 of every filter. */
    float k[3 * 3 * 2 * 4];
    for (int i = 0; i < 72; i++)
        k[i] = (float)i;
    cs_tiles t = {k + 1 * 4, 4, 3, 3, 1, 1, 3 * 2 * 4, 2 * 4, 0};
    cs_image *img = cs_draw_tiles(&t, 4, 1, 0, 0.f, 72.f, 0);
    CHECK(img && img->w == 12 && img->h == 3, "kernel grid size");
    if (img) {
        /* filter 3, (i 2, j 1): ((2*3 + 1)*2 + 1)*4 + 3 = 63 -> floor(256*63/72) = 224 */
        CHECK(pixel(img, 3 * 3 + 1, 2)[0] == 224, "kernel value %d", pixel(img, 10, 2)[0]);
        cs_image_destroy(img);
    }
    /* RGB tiles: VGG16's first layer, kernel (3, 3, 3, out): channel stride = out */
    enum { OUT = 2 };
    float rgbk[3 * 3 * 3 * OUT];
    for (int i = 0; i < 3 * 3 * 3 * OUT; i++)
        rgbk[i] = 0.f;
    rgbk[((1 * 3 + 2) * 3 + 0) * OUT + 1] = 1.f; /* filter 1, (1, 2), red */
    rgbk[((1 * 3 + 2) * 3 + 2) * OUT + 1] = 0.5f; /* filter 1, (1, 2), blue */
    cs_tiles tr = {rgbk, OUT, 3, 3, 3, 1, 3 * 3 * OUT, 3 * OUT, OUT};
    img = cs_draw_tiles(&tr, 2, 1, 0, 0.f, 1.f, 1);
    CHECK(img && img->c == 3 && img->w == 9 && img->h == 5, "rgb grid");
    if (img) {
        /* filter 1 starts at x = 1 + 3 + 1 = 5, y = 1: pixel (1,2) at (7, 2) */
        const uint8_t *p = pixel(img, 7, 2);
        CHECK(p[0] == 255 && p[1] == 0 && p[2] == 128, "rgb pixel %d %d %d", p[0], p[1], p[2]);
        cs_image_destroy(img);
    }
}

static void test_heatmap(void)
{
    /* a flat 0.5 heatmap: uint8(127.5) = 127 everywhere */
    float h[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    cs_image *img = cs_draw_heatmap(h, 2, 2, 3, 5);
    CHECK(img && img->w == 3 && img->h == 5 && img->c == 3, "heatmap size");
    uint8_t want[3];
    cs_colormap_jet(127, want);
    if (img)
        for (int i = 0; i < 15; i++)
            CHECK(memcmp(img->px + 3 * i, want, 3) == 0, "heatmap pixel %d", i);
    cs_image_destroy(img);
    /* 1x2 -> 1x4: values 0, .25, .75, 1 -> bytes 0, 63, 191, 255 */
    float r[2] = {0.f, 1.f};
    img = cs_draw_heatmap(r, 1, 2, 4, 1);
    if (img) {
        int bytes[4] = {0, 63, 191, 255};
        for (int i = 0; i < 4; i++) {
            cs_colormap_jet((uint8_t)bytes[i], want);
            CHECK(memcmp(img->px + 3 * i, want, 3) == 0, "heatmap ramp %d", i);
        }
    }
    cs_image_destroy(img);
    CHECK(cs_draw_heatmap(NULL, 1, 1, 1, 1) == NULL, "NULL heat");
    CHECK(cs_draw_heatmap(h, 2, 2, 0, 5) == NULL, "zero size");
}

static void test_overlay_formula(void)
{
    /* 1x1: gray base 100, heat 1 -> jet(255) = (128, 0, 0); alpha .7:
     * (.7*128 + 100, 100, 100) = (189.6, 100, 100) -> (190, 100, 100) */
    cs_image base;
    cs_image_alloc(&base, 1, 1, 1);
    base.px[0] = 100;
    float one = 1.f;
    cs_image *o = cs_draw_gradcam_overlay(&base, &one, 1, 1, 0.7f, 1, 1);
    CHECK(o && o->w == 1 && o->h == 1 && o->c == 3, "overlay 1x1");
    if (o)
        CHECK(o->px[0] == 190 && o->px[1] == 100 && o->px[2] == 100, "overlay %d %d %d",
              o->px[0], o->px[1], o->px[2]);
    cs_image_destroy(o);
    cs_image_free(&base);

    /* RGB base, heat 0 -> jet(0) = (0, 0, 128); alpha .4: blue 250 + 51.2 clips to 255 */
    cs_image_alloc(&base, 1, 1, 3);
    base.px[0] = 200, base.px[1] = 10, base.px[2] = 250;
    float zero = 0.f;
    o = cs_draw_gradcam_overlay(&base, &zero, 1, 1, 0.4f, 0, 0);
    CHECK(o && o->w == 1 && o->h == 1, "overlay keeps base size when out size is 0");
    if (o)
        CHECK(o->px[0] == 200 && o->px[1] == 10 && o->px[2] == 255, "overlay clip %d %d %d",
              o->px[0], o->px[1], o->px[2]);
    cs_image_destroy(o);
    cs_image_free(&base);

    /* 28x28 base, 11x11 heat, 540x540 output as the notebook: corners keep the
     * corner overlay values (bilinear upscaling copies edge pixels at the corners) */
    cs_image_alloc(&base, 28, 28, 1);
    for (int i = 0; i < 28 * 28; i++)
        base.px[i] = (uint8_t)(i % 200);
    float heat[121];
    for (int i = 0; i < 121; i++)
        heat[i] = (float)i / 120.f;
    o = cs_draw_gradcam_overlay(&base, heat, 11, 11, 0.7f, 540, 540);
    CHECK(o && o->w == 540 && o->h == 540, "540x540");
    if (o) {
        uint8_t j[3];
        cs_colormap_jet(0, j); /* heat(0,0) = 0 */
        CHECK(o->px[0] == (uint8_t)lrintf(0.7f * j[0] + 0) &&
                  o->px[2] == (uint8_t)lrintf(0.7f * j[2] + 0),
              "top-left %d %d %d", o->px[0], o->px[1], o->px[2]);
        cs_colormap_jet(255, j); /* heat(10,10) = 1, base 783 % 200 = 183 */
        const uint8_t *p = pixel(o, 539, 539);
        int r = (int)lrintf(fminf(0.7f * j[0] + 183, 255.f));
        CHECK(p[0] == r && p[1] == 183, "bottom-right %d %d %d", p[0], p[1], p[2]);
    }
    cs_image_destroy(o);
    CHECK(cs_draw_gradcam_overlay(NULL, heat, 11, 11, 0.7f, 1, 1) == NULL, "NULL base");
    CHECK(cs_draw_gradcam_overlay(&base, NULL, 11, 11, 0.7f, 1, 1) == NULL, "NULL heat");
    cs_image_free(&base);
}

int main(void)
{
    RUN(test_jet_matches_opencv);
    RUN(test_tiles_size_and_placement);
    RUN(test_tiles_value_mapping);
    RUN(test_tiles_keras_kernel_and_rgb);
    RUN(test_heatmap);
    RUN(test_overlay_formula);
    return test_summary("draw");
}
