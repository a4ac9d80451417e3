/*
 * draw_grid.h - pictures side by side: a grid of equal tiles with a colour scale under
 * it (the explanation methods compared on one image).
 */
#ifndef CS_DRAW_GRID_H
#define CS_DRAW_GRID_H

#include "image.h"

/*
 * rows x cols tiles, tile i at row i / cols, column i % cols, each tile_w x tile_h
 * pixels (gray tiles are drawn as R = G = B; a NULL or wrongly sized tile stays the
 * background), gap pixels apart and around, on CS_DRAW_GAP_COLOR; under them, when
 * bar_h > 0, a strip bar_h pixels tall across the grid's inner width running through
 * the JET colour map from 0 at the left to 255 at the right (cs_colormap_jet), the
 * scale every heatmap of the grid is drawn in. Output size:
 *   W = cols * tile_w + (cols + 1) * gap,
 *   H = rows * tile_h + (rows + 1) * gap + (bar_h > 0 ? bar_h + gap : 0).
 * RGB; NULL on bad sizes or out of memory (free with cs_image_destroy).
 */
cs_image *cs_draw_tile_grid(const cs_image *const *tiles, int rows, int cols, int tile_w, int tile_h, int gap,
                            int bar_h);

#endif
