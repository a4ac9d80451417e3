/*
 * h5_attr.h - writing string attributes the way h5py does for Keras files, for the
 * tests that build their own HDF5 weight files (independently of the saver in
 * core/keras_h5.c): fixed-length, NUL-padded strings, or variable-length UTF-8 ones.
 */
#ifndef CS_TEST_H5_ATTR_H
#define CS_TEST_H5_ATTR_H

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

static inline void test_h5_str_attr(hid_t obj, const char *name, const char *const *s, int n, int variable)
{
    hsize_t dim = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &dim, NULL), t = H5Tcopy(H5T_C_S1), a;
    if (variable) {
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (n) H5Awrite(a, t, s);
    } else {
        size_t size = 1;
        for (int i = 0; i < n; i++)
            if (strlen(s[i]) > size) size = strlen(s[i]);
        char *buf = calloc((size_t)n + 1, size);
        for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * size, s[i], strlen(s[i]));
        H5Tset_size(t, size);
        H5Tset_strpad(t, H5T_STR_NULLPAD);
        a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (n) H5Awrite(a, t, buf);
        free(buf);
    }
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
}

#endif
