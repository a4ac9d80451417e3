/*
 * draw_matrix.h - a matrix of counts as a picture: a confusion matrix, each cell
 * coloured by its share of its row (white for none, dark blue for all, as
 * matplotlib's "Blues"), with its count written in it when the cell is large enough.
 */
#ifndef CS_DRAW_MATRIX_H
#define CS_DRAW_MATRIX_H

#include "image.h"

/* Colour of a share u in [0, 1] (clipped): RGB from (247, 251, 255) to (8, 48, 107). */
void cs_colormap_blues(double u, uint8_t rgb[3]);

/* rows x cols counts (row-major) in cells of cell x cell pixels, 1-pixel gaps of
 * CS_DRAW_GAP_COLOR around them; the share is count / row sum (0 for an empty row).
 * RGB; NULL on bad arguments, an image over 4096 x 4096, or out of memory. */
cs_image *cs_draw_count_matrix(const long *counts, int rows, int cols, int cell);

#endif
