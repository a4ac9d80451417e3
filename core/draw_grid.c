/*
 * draw_grid.c - a grid of equal tiles and a colour scale (see draw_grid.h).
 */
#include "draw_grid.h"

#include <string.h>

#include "draw.h"

#define MAX_SIDE 16384

cs_image *cs_draw_tile_grid(const cs_image *const *tiles, int rows, int cols, int tile_w, int tile_h, int gap,
                            int bar_h)
{
    if (rows < 1 || cols < 1 || tile_w < 1 || tile_h < 1 || gap < 0 || bar_h < 0 || tile_w > MAX_SIDE ||
        tile_h > MAX_SIDE || rows > MAX_SIDE / (tile_h + gap + 1) || cols > MAX_SIDE / (tile_w + gap + 1) ||
        bar_h > MAX_SIDE)
        return NULL;
    const int W = cols * tile_w + (cols + 1) * gap;
    const int H = rows * tile_h + (rows + 1) * gap + (bar_h > 0 ? bar_h + gap : 0);
    cs_image *img = cs_image_new(W, H, 3);
    if (!img) return NULL;
    memset(img->px, CS_DRAW_GAP_COLOR, (size_t)W * H * 3);
    for (int i = 0; i < rows * cols; i++) {
        const cs_image *t = tiles[i];
        if (!t || !t->px || t->w != tile_w || t->h != tile_h || (t->c != 1 && t->c != 3)) continue;
        const int x0 = gap + (i % cols) * (tile_w + gap), y0 = gap + (i / cols) * (tile_h + gap);
        for (int y = 0; y < tile_h; y++)
            for (int x = 0; x < tile_w; x++) {
                uint8_t *d = img->px + ((size_t)(y0 + y) * W + x0 + x) * 3;
                const uint8_t *s = t->px + ((size_t)y * tile_w + x) * t->c;
                for (int ch = 0; ch < 3; ch++) d[ch] = s[t->c == 3 ? ch : 0];
            }
    }
    if (bar_h > 0) {
        const int y0 = rows * tile_h + (rows + 1) * gap, inner = W - 2 * gap;
        for (int x = 0; x < inner; x++) {
            uint8_t rgb[3];
            cs_colormap_jet((uint8_t)(inner > 1 ? (255 * x + (inner - 1) / 2) / (inner - 1) : 255), rgb);
            for (int y = 0; y < bar_h; y++) memcpy(img->px + ((size_t)(y0 + y) * W + gap + x) * 3, rgb, 3);
        }
    }
    return img;
}
