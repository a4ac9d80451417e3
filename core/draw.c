/*
 * draw.c - tile grids, the JET colour map and Grad-CAM pictures (see draw.h).
 *
 * The arithmetic follows what the notebook's pictures were made with
 * (matplotlib's gray quantisation, cv2.resize, cv2.applyColorMap), so the
 * service's images match the seed's pixel for pixel where that is possible.
 */
#include "draw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Largest picture drawn here; above it the arguments are certainly wrong. */
#define MAX_DRAW_PIXELS ((size_t)CS_DRAW_MAX_PIXELS)

/*
 * OpenCV's COLORMAP_JET as RGB. OpenCV builds it from GNU Octave's jet sampled at
 * x = i / 255 (256 float entries), re-interpolates that table with interp1 onto
 * linspace(0, 1, 256) in float, scales by 255 in float and rounds half to even.
 * Nearly every ramp entry lands exactly on .5 there, so the rounding decides
 * the bytes; this table is the result of replaying those float steps.
 */
static const uint8_t jet_lut[256][3] = {
    {0, 0, 128}, {0, 0, 132}, {0, 0, 136}, {0, 0, 140}, {0, 0, 144}, {0, 0, 148},
    {0, 0, 152}, {0, 0, 156}, {0, 0, 160}, {0, 0, 164}, {0, 0, 168}, {0, 0, 172},
    {0, 0, 176}, {0, 0, 180}, {0, 0, 184}, {0, 0, 188}, {0, 0, 192}, {0, 0, 196},
    {0, 0, 200}, {0, 0, 204}, {0, 0, 208}, {0, 0, 212}, {0, 0, 216}, {0, 0, 220},
    {0, 0, 224}, {0, 0, 228}, {0, 0, 232}, {0, 0, 236}, {0, 0, 240}, {0, 0, 244},
    {0, 0, 248}, {0, 0, 252}, {0, 0, 255}, {0, 4, 255}, {0, 8, 255}, {0, 12, 255},
    {0, 16, 255}, {0, 20, 255}, {0, 24, 255}, {0, 28, 255}, {0, 32, 255}, {0, 36, 255},
    {0, 40, 255}, {0, 44, 255}, {0, 48, 255}, {0, 52, 255}, {0, 56, 255}, {0, 60, 255},
    {0, 64, 255}, {0, 68, 255}, {0, 72, 255}, {0, 76, 255}, {0, 80, 255}, {0, 84, 255},
    {0, 88, 255}, {0, 92, 255}, {0, 96, 255}, {0, 100, 255}, {0, 104, 255}, {0, 108, 255},
    {0, 112, 255}, {0, 116, 255}, {0, 120, 255}, {0, 124, 255}, {0, 128, 255}, {0, 132, 255},
    {0, 136, 255}, {0, 140, 255}, {0, 144, 255}, {0, 148, 255}, {0, 152, 255}, {0, 156, 255},
    {0, 160, 255}, {0, 164, 255}, {0, 168, 255}, {0, 172, 255}, {0, 176, 255}, {0, 180, 255},
    {0, 184, 255}, {0, 188, 255}, {0, 192, 255}, {0, 196, 255}, {0, 200, 255}, {0, 204, 255},
    {0, 208, 255}, {0, 212, 255}, {0, 216, 255}, {0, 220, 255}, {0, 224, 255}, {0, 228, 255},
    {0, 232, 255}, {0, 236, 255}, {0, 240, 255}, {0, 244, 255}, {0, 248, 255}, {0, 252, 255},
    {2, 255, 254}, {6, 255, 250}, {10, 255, 246}, {14, 255, 242}, {18, 255, 238}, {22, 255, 234},
    {26, 255, 230}, {30, 255, 226}, {34, 255, 222}, {38, 255, 218}, {42, 255, 214}, {46, 255, 210},
    {50, 255, 206}, {54, 255, 202}, {58, 255, 198}, {62, 255, 194}, {66, 255, 190}, {70, 255, 186},
    {74, 255, 182}, {78, 255, 178}, {82, 255, 174}, {86, 255, 170}, {90, 255, 166}, {94, 255, 162},
    {98, 255, 158}, {102, 255, 154}, {106, 255, 150}, {110, 255, 146}, {114, 255, 142}, {118, 255, 138},
    {122, 255, 134}, {126, 255, 130}, {130, 255, 126}, {134, 255, 122}, {138, 255, 118}, {142, 255, 114},
    {146, 255, 110}, {150, 255, 106}, {154, 255, 102}, {158, 255, 98}, {162, 255, 94}, {166, 255, 90},
    {170, 255, 86}, {174, 255, 82}, {178, 255, 78}, {182, 255, 74}, {186, 255, 70}, {190, 255, 66},
    {194, 255, 62}, {198, 255, 58}, {202, 255, 54}, {206, 255, 50}, {210, 255, 46}, {214, 255, 42},
    {218, 255, 38}, {222, 255, 34}, {226, 255, 30}, {230, 255, 26}, {234, 255, 22}, {238, 255, 18},
    {242, 255, 14}, {246, 255, 10}, {250, 255, 6}, {254, 255, 1}, {255, 252, 0}, {255, 248, 0},
    {255, 244, 0}, {255, 240, 0}, {255, 236, 0}, {255, 232, 0}, {255, 228, 0}, {255, 224, 0},
    {255, 220, 0}, {255, 216, 0}, {255, 212, 0}, {255, 208, 0}, {255, 204, 0}, {255, 200, 0},
    {255, 196, 0}, {255, 192, 0}, {255, 188, 0}, {255, 184, 0}, {255, 180, 0}, {255, 176, 0},
    {255, 172, 0}, {255, 168, 0}, {255, 164, 0}, {255, 160, 0}, {255, 156, 0}, {255, 152, 0},
    {255, 148, 0}, {255, 144, 0}, {255, 140, 0}, {255, 136, 0}, {255, 132, 0}, {255, 128, 0},
    {255, 124, 0}, {255, 120, 0}, {255, 116, 0}, {255, 112, 0}, {255, 108, 0}, {255, 104, 0},
    {255, 100, 0}, {255, 96, 0}, {255, 92, 0}, {255, 88, 0}, {255, 84, 0}, {255, 80, 0},
    {255, 76, 0}, {255, 72, 0}, {255, 68, 0}, {255, 64, 0}, {255, 60, 0}, {255, 56, 0},
    {255, 52, 0}, {255, 48, 0}, {255, 44, 0}, {255, 40, 0}, {255, 36, 0}, {255, 32, 0},
    {255, 28, 0}, {255, 24, 0}, {255, 20, 0}, {255, 16, 0}, {255, 12, 0}, {255, 8, 0},
    {255, 4, 0}, {255, 0, 0}, {252, 0, 0}, {248, 0, 0}, {244, 0, 0}, {240, 0, 0},
    {236, 0, 0}, {232, 0, 0}, {228, 0, 0}, {224, 0, 0}, {220, 0, 0}, {216, 0, 0},
    {212, 0, 0}, {208, 0, 0}, {204, 0, 0}, {200, 0, 0}, {196, 0, 0}, {192, 0, 0},
    {188, 0, 0}, {184, 0, 0}, {180, 0, 0}, {176, 0, 0}, {172, 0, 0}, {168, 0, 0},
    {164, 0, 0}, {160, 0, 0}, {156, 0, 0}, {152, 0, 0}, {148, 0, 0}, {144, 0, 0},
    {140, 0, 0}, {136, 0, 0}, {132, 0, 0}, {128, 0, 0},
};

void cs_colormap_jet(uint8_t v, uint8_t rgb[3])
{
    memcpy(rgb, jet_lut[v], 3);
}

/* matplotlib's Colormap.__call__ on a normalised value: floor(u * N), N - 1 at 1. */
static uint8_t quantise(float v, float lo, float inv_range)
{
    if (!(inv_range > 0.f) || isnan(v))
        return 0;
    float u = (v - lo) * inv_range;
    if (!(u > 0.f))
        return 0;
    if (u >= 1.f)
        return 255;
    int q = (int)(u * 256.f);
    return (uint8_t)(q > 255 ? 255 : q);
}

static float tile_value(const cs_tiles *t, int i, int y, int x, int ch)
{
    return t->data[i * t->tile_stride + y * t->y_stride + x * t->x_stride + ch * t->c_stride];
}

void cs_draw_tiles_size(int n, int h, int w, int cols, int scale, int gap, long long *W, long long *H)
{
    *W = *H = 0;
    if (n <= 0 || h <= 0 || w <= 0 || cols <= 0 || scale <= 0 || gap < 0)
        return;
    long long rows = (n + (long long)cols - 1) / cols;
    /* In 64 bits: a silly scale must not overflow int. */
    *W = (long long)cols * w * scale + (long long)(cols + 1) * gap;
    *H = rows * h * scale + (rows + 1) * gap;
}

cs_image *cs_draw_tiles(const cs_tiles *t, int cols, int scale, int per_tile_norm, float lo,
                        float hi, int gap)
{
    if (!t || !t->data || t->n <= 0 || t->h <= 0 || t->w <= 0 || (t->c != 1 && t->c != 3) ||
        cols <= 0 || scale <= 0 || gap < 0)
        return NULL;
    long long W, H;
    cs_draw_tiles_size(t->n, t->h, t->w, cols, scale, gap, &W, &H);
    if (W <= 0 || H <= 0 || W > INT32_MAX || H > INT32_MAX ||
        (unsigned long long)W * (unsigned long long)H > MAX_DRAW_PIXELS)
        return NULL;
    cs_image *img = cs_image_new((int)W, (int)H, t->c);
    if (!img)
        return NULL;
    memset(img->px, CS_DRAW_GAP_COLOR, (size_t)W * (size_t)H * (size_t)t->c);

    int c = t->c;
    for (int i = 0; i < t->n; i++) {
        float tlo = lo, thi = hi;
        if (per_tile_norm) {
            tlo = INFINITY;
            thi = -INFINITY;
            for (int y = 0; y < t->h; y++)
                for (int x = 0; x < t->w; x++)
                    for (int ch = 0; ch < c; ch++) {
                        float v = tile_value(t, i, y, x, ch);
                        if (v < tlo)
                            tlo = v;
                        if (v > thi)
                            thi = v;
                    }
        }
        float inv = (thi > tlo && isfinite(thi - tlo)) ? 1.f / (thi - tlo) : 0.f;
        int ox = gap + (i % cols) * (t->w * scale + gap);
        int oy = gap + (i / cols) * (t->h * scale + gap);
        for (int y = 0; y < t->h; y++) {
            uint8_t *row0 = img->px + ((size_t)(oy + y * scale) * (size_t)W + (size_t)ox) * c;
            for (int x = 0; x < t->w; x++)
                for (int ch = 0; ch < c; ch++) {
                    uint8_t q = quantise(tile_value(t, i, y, x, ch), tlo, inv);
                    for (int k = 0; k < scale; k++)
                        row0[((size_t)x * scale + k) * c + ch] = q;
                }
            /* The other scale - 1 rows of the block repeat the first. */
            for (int k = 1; k < scale; k++)
                memcpy(row0 + (size_t)k * W * c, row0, (size_t)t->w * scale * c);
        }
    }
    return img;
}

/* uint8(255 * h) as numpy's astype: truncation; out-of-range and NaN clamp. */
static uint8_t heat_byte(float h)
{
    float v = 255.f * h;
    if (!(v > 0.f))
        return 0;
    return v >= 255.f ? 255 : (uint8_t)v;
}

static int valid_heat(const float *heat, int hh, int hw)
{
    return heat && hh > 0 && hw > 0 && (size_t)hh * (size_t)hw <= MAX_DRAW_PIXELS;
}

static int valid_out(int w, int h)
{
    return w > 0 && h > 0 && (size_t)w * (size_t)h <= MAX_DRAW_PIXELS;
}

cs_image *cs_draw_heatmap(const float *heat, int hh, int hw, int out_w, int out_h)
{
    if (!valid_heat(heat, hh, hw) || !valid_out(out_w, out_h))
        return NULL;
    size_t n = (size_t)out_w * (size_t)out_h;
    float *big = malloc(n * sizeof *big);
    cs_image *img = big ? cs_image_new(out_w, out_h, 3) : NULL;
    if (!img) {
        free(big);
        return NULL;
    }
    cs_resize_bilinear_f32(heat, hh, hw, big, out_h, out_w);
    for (size_t i = 0; i < n; i++)
        cs_colormap_jet(heat_byte(big[i]), img->px + 3 * i);
    free(big);
    return img;
}

cs_image *cs_draw_gradcam_overlay(const cs_image *base, const float *heat, int hh, int hw,
                                  float alpha, int out_w, int out_h)
{
    if (!base || !base->px || (base->c != 1 && base->c != 3) || !valid_out(base->w, base->h) ||
        !valid_heat(heat, hh, hw))
        return NULL;
    if (out_w <= 0 || out_h <= 0) {
        out_w = base->w;
        out_h = base->h;
    }
    if (!valid_out(out_w, out_h))
        return NULL;

    int bw = base->w, bh = base->h;
    size_t bn = (size_t)bw * (size_t)bh;
    float *h = malloc(bn * sizeof *h);
    float *over = malloc(3 * bn * sizeof *over); /* the overlay, RGB interleaved */
    cs_image *img = (h && over) ? cs_image_new(out_w, out_h, 3) : NULL;
    if (!img) {
        free(h);
        free(over);
        return NULL;
    }

    cs_resize_bilinear_f32(heat, hh, hw, h, bh, bw);
    for (size_t i = 0; i < bn; i++) {
        uint8_t rgb[3];
        cs_colormap_jet(heat_byte(h[i]), rgb);
        for (int ch = 0; ch < 3; ch++) {
            float b = base->px[i * base->c + (base->c == 3 ? ch : 0)];
            float v = alpha * rgb[ch] + b;
            over[3 * i + ch] = v < 0.f ? 0.f : v > 255.f ? 255.f : v;
        }
    }
    /* The notebook resizes the float overlay; rounding comes last. */
    cs_resize_bilinear_f32_u8(over, bh, bw, 3, img->px, out_h, out_w);
    free(h);
    free(over);
    return img;
}
