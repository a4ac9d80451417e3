/*
 * draw_matrix.c - counts as a coloured grid with the numbers in the cells (a 3x5 pixel
 * digit font, scaled to the cell).
 */
#include "draw_matrix.h"

#include <stdio.h>
#include <string.h>

#include "draw.h"

void cs_colormap_blues(double u, uint8_t rgb[3])
{
    static const double lo[3] = {247, 251, 255}, hi[3] = {8, 48, 107};
    if (!(u > 0)) u = 0; /* NaN too */
    if (u > 1) u = 1;
    for (int ch = 0; ch < 3; ch++) rgb[ch] = (uint8_t)(lo[ch] + (hi[ch] - lo[ch]) * u + 0.5);
}

/* Rows of each digit, 3 bits wide (bit 2 the left column). */
static const uint8_t k_digits[10][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
};

static void fill(cs_image *img, int x0, int y0, int w, int h, const uint8_t rgb[3])
{
    for (int y = y0; y < y0 + h && y < img->h; y++)
        for (int x = x0; x < x0 + w && x < img->w; x++) memcpy(img->px + ((size_t)y * img->w + x) * 3, rgb, 3);
}

/* The number centred in the cell at (x0, y0), when it fits with a margin. */
static void draw_number(cs_image *img, int x0, int y0, int cell, long v, const uint8_t rgb[3])
{
    char text[24];
    int len = snprintf(text, sizeof text, "%ld", v);
    int s = cell / 12; /* pixel size of one font dot */
    while (s > 1 && len * 4 * s > cell - 2 * s) s--;
    if (s < 1 || len * 4 - 1 > cell - 2) return;
    int tw = (len * 4 - 1) * s, th = 5 * s;
    int x = x0 + (cell - tw) / 2, y = y0 + (cell - th) / 2;
    for (int i = 0; i < len; i++, x += 4 * s)
        for (int r = 0; r < 5; r++)
            for (int col = 0; col < 3; col++)
                if (k_digits[text[i] - '0'][r] & (4 >> col)) fill(img, x + col * s, y + r * s, s, s, rgb);
}

cs_image *cs_draw_count_matrix(const long *counts, int rows, int cols, int cell)
{
    if (!counts || rows < 1 || cols < 1 || cell < 1) return NULL;
    long long W = (long long)cols * (cell + 1) + 1, H = (long long)rows * (cell + 1) + 1;
    if (W > 4096 || H > 4096) return NULL;
    cs_image *img = cs_image_new((int)W, (int)H, 3);
    if (!img) return NULL;
    memset(img->px, CS_DRAW_GAP_COLOR, (size_t)W * H * 3);
    for (int r = 0; r < rows; r++) {
        long sum = 0;
        for (int c = 0; c < cols; c++) sum += counts[(size_t)r * cols + c];
        for (int c = 0; c < cols; c++) {
            long v = counts[(size_t)r * cols + c];
            double u = sum > 0 ? (double)v / sum : 0;
            uint8_t bg[3], fg[3];
            cs_colormap_blues(u, bg);
            /* Dark text on light cells, white on dark ones. */
            memset(fg, u > 0.5 ? 255 : 32, 3);
            int x0 = 1 + c * (cell + 1), y0 = 1 + r * (cell + 1);
            fill(img, x0, y0, cell, cell, bg);
            draw_number(img, x0, y0, cell, v, fg);
        }
    }
    return img;
}
