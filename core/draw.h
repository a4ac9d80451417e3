/*
 * draw.h - the pictures convscope serves: grids of filters or feature maps, and
 * Grad-CAM heatmaps and overlays, drawn into cs_image (see image.h).
 *
 * Every function returning cs_image * allocates it; the caller releases it with
 * cs_image_destroy(). NULL means bad arguments or out of memory.
 */
#ifndef CS_DRAW_H
#define CS_DRAW_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/*
 * n tiles of h x w pixels with c channels (1 = gray, 3 = RGB) read in place from
 * any float layout: value (tile i, row y, column x, channel ch) is
 *   data[i * tile_stride + y * y_stride + x * x_stride + ch * c_stride]
 * (strides in floats). For an NHWC activation of one image with K channels:
 * tile_stride = 1, y_stride = W * K, x_stride = K. For a Keras conv kernel
 * (kh, kw, in, out), input channel j: data = kernel + j, tile_stride = 1,
 * y_stride = kw * in * out, x_stride = in * out.
 */
typedef struct {
    const float *data;
    int n, h, w, c;
    ptrdiff_t tile_stride, y_stride, x_stride, c_stride;
} cs_tiles;

/* The largest image (width * height) the functions here draw; beyond it they return
 * NULL, so callers check sizes from the arguments first (cs_draw_tiles_size). */
#define CS_DRAW_MAX_PIXELS (64LL * 1024 * 1024)

/* Background between tiles (all channels). */
#define CS_DRAW_GAP_COLOR 48

/*
 * A grid of the n tiles in `cols` columns and rows = ceil(n / cols) rows, tile i at
 * row i / cols, column i % cols. Output size:
 *   W = cols * w * scale + (cols + 1) * gap,  H = rows * h * scale + (rows + 1) * gap,
 * with t->c channels; tile i's pixel (y, x) covers the scale x scale block whose
 * top-left corner is (gap + col * (w * scale + gap) + x * scale,
 *                     gap + row * (h * scale + gap) + y * scale).
 * Values map through u = (v - lo) / (hi - lo) clipped to [0, 1], then to
 * min(255, floor(256 * u)) as matplotlib's gray colour map quantises. With
 * per_tile_norm, lo and hi are each tile's own min and max (imshow's default)
 * and the arguments are ignored. A constant tile (hi <= lo) and NaN map to 0.
 */
cs_image *cs_draw_tiles(const cs_tiles *t, int cols, int scale, int per_tile_norm, float lo,
                        float hi, int gap);
/* The size cs_draw_tiles gives n tiles of h x w (0 x 0 for invalid arguments). */
void cs_draw_tiles_size(int n, int h, int w, int cols, int scale, int gap, long long *W, long long *H);

/* cv2.applyColorMap(v, COLORMAP_JET), entry for entry, in RGB order (OpenCV
 * returns BGR). */
void cs_colormap_jet(uint8_t v, uint8_t rgb[3]);

/* The heatmap alone: heat (hh x hw, values 0..1) resized bilinearly (cv2
 * INTER_LINEAR) to out_w x out_h, then uint8(255 * h) (truncating, as numpy does)
 * through JET. RGB. */
cs_image *cs_draw_heatmap(const float *heat, int hh, int hw, int out_w, int out_h);

/*
 * The notebook's overlay: heat resized bilinearly to base's size, uint8(255 * h),
 * JET, overlay = alpha * jet + base (a gray base counts as R = G = B), clipped to
 * 0..255, then resized bilinearly to out_w x out_h (out_w or out_h <= 0: base's
 * size) and rounded. RGB.
 */
cs_image *cs_draw_gradcam_overlay(const cs_image *base, const float *heat, int hh, int hw,
                                  float alpha, int out_w, int out_h);

#endif
