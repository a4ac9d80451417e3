/*
 * model.h - a network as a graph of named nodes (layers), kept in topological order.
 *
 * Each node reads the outputs of earlier nodes (or the model's input, index -1; an
 * imported graph may have further inputs, -2, -3, ...), so
 * the order the nodes are stored in is an order they can run in, and the last node is
 * the model's output. A Sequential model is the graph where each node reads the one
 * before it. What a node of each kind computes lives in that kind's row of the layer
 * table (layer_ops.h, one file per kind under core/layers/).
 *
 * Layout conventions (stated once, used everywhere):
 *   - activations are float32, NHWC, one contiguous block per layer output;
 *   - a dense layer's output has shape 1 x 1 x units;
 *   - conv kernels are stored as Keras stores them: (kh, kw, in, out), row-major,
 *     so the kernel is directly the right-hand matrix [kh*kw*in x out] of im2col;
 *   - dense kernels are (in, out) row-major, as Keras stores them;
 *   - gradients are d(scalar)/d(x): positive sign, the optimiser subtracts them.
 *
 * A cs_model holds the architecture and the parameters and is read-only while it
 * serves. Everything that changes during a pass (activations, gradients,
 * scratch) lives in a cs_exec (exec.h), one per thread, so many threads can run
 * one model at once.
 */
#ifndef CS_MODEL_H
#define CS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "preprocess.h"

#define CS_NAME_MAX 64
#define CS_MAX_PARAMS 4 /* kernel, bias / gamma, beta, moving_mean, moving_variance */
#define CS_MAX_INPUTS 16
#define CS_MODEL_INPUT (-1) /* a node input that is the model's (first) input */
/* A model may take several inputs (an ONNX graph of several); node inputs name input k
 * (0 first) as CS_MODEL_INPUT_K(k). Only imported graphs have more than one. */
#define CS_MAX_MODEL_INPUTS 8
#define CS_MODEL_INPUT_K(k) (-1 - (k))

/* The layer kinds; each is one row of the layer table (layer_ops.h). The order is
 * only an index: files name kinds by their Keras class name. */
typedef enum {
    CS_CONV2D,
    CS_BATCHNORM,
    CS_LEAKY_RELU,
    CS_RELU,
    CS_MAXPOOL,
    CS_FLATTEN,
    CS_DENSE,
    CS_DROPOUT,
    CS_DEPTHWISE_CONV2D,  /* DepthwiseConv2D */
    CS_SEPARABLE_CONV2D,  /* SeparableConv2D: depthwise then pointwise */
    CS_AVGPOOL,           /* AveragePooling2D */
    CS_GLOBAL_AVGPOOL,    /* GlobalAveragePooling2D */
    CS_GLOBAL_MAXPOOL,    /* GlobalMaxPooling2D */
    CS_ACTIVATION,        /* Activation: any elementwise function (cfg.actf) */
    CS_SOFTMAX,           /* Softmax over the channels */
    CS_ADD,               /* Add: two or more inputs, broadcasting */
    CS_SUBTRACT,          /* Subtract: two inputs, broadcasting */
    CS_MULTIPLY,          /* Multiply: two or more inputs, broadcasting (squeeze-and-excitation) */
    CS_CONCATENATE,       /* Concatenate along the channels */
    CS_ZERO_PADDING2D,    /* ZeroPadding2D (and ONNX constant Pad) */
    CS_RESCALING,         /* Rescaling: x * scale + offset */
    CS_NORMALIZATION,     /* Normalization: (x - mean) / sqrt(variance), per channel */
    CS_KIND_COUNT
} cs_layer_kind;

/* Activation fused into a conv or dense layer, as Keras' `activation=` does. */
typedef enum { CS_ACT_LINEAR, CS_ACT_RELU, CS_ACT_SOFTMAX } cs_activation;

typedef struct {
    int h, w, c;
} cs_shape;

/* One parameter tensor of a layer. `data` points into the model's parameter block. */
typedef struct {
    char name[CS_NAME_MAX]; /* Keras weight name: kernel, bias, gamma, beta, moving_mean, ... */
    float *data;
    size_t size;
    int ndim;
    int dims[4];   /* Keras shape */
    int trainable; /* moving statistics are not */
    float l1, l2;  /* regulariser on this tensor (0 when none) */
} cs_param;

/* Per-kind configuration. Unused fields stay zero, and zero always means the
 * default, so a configuration written before a field existed keeps its meaning. */
typedef struct {
    /* Windows of convs and pools: kernel x kernel_w, strides stride x stride_w,
     * dilations dilation x dilation_w; a zero _w field is "as the first", a zero
     * stride or dilation is 1 (a zero pool stride is the window). Padding is 'valid',
     * 'same' (TensorFlow's: an odd pixel goes at the bottom/right), or explicit when
     * pad_explicit: pads = top, left, bottom, right, any of them unequal. */
    int filters, kernel, stride;
    int kernel_w, stride_w, dilation, dilation_w;
    int pad_same;                /* 1 = 'same', 0 = 'valid' */
    int pad_explicit, pads[4];
    int groups;                  /* conv2d: input and output channels in this many groups */
    int depth_multiplier;        /* depthwise and separable convs */
    int units;                   /* dense */
    int pool;                    /* max pool: its square window when the stride is the window with no
                                    padding or dilation (the fast path; the row sets it, else 0); a
                                    pool given no kernel takes it as its window */
    int ceil_mode;               /* pools: a last partial window counts */
    int count_include_pad;       /* average pool: padded zeros count in the mean */
    int actf;                    /* activation: the function (kernels.h's cs_actf) */
    float act_a, act_b;          /* its constants: clip's min and max, elu's alpha, hard sigmoid's slope and offset */
    float scale, offset;         /* rescaling */
    float pad_value;             /* padding */
    float alpha;                 /* leaky relu slope */
    float momentum, epsilon;     /* batch norm */
    float rate;                  /* dropout */
    cs_activation activation;    /* conv2d, dense */
    float l1, l2;                /* kernel regulariser (conv2d, dense) */
    int he_normal;               /* kernel initialiser: he_normal (1) or glorot_uniform (0) */
} cs_layer_config;

typedef struct {
    char name[CS_NAME_MAX];
    cs_layer_kind kind;
    cs_layer_config cfg;
    int n_inputs;
    int inputs[CS_MAX_INPUTS]; /* earlier nodes, or CS_MODEL_INPUT */
    cs_shape in, out;          /* in: the shape of the first input */
    int n_consumers;           /* nodes that read this one's output (set by cs_model_finish) */
    int n_params;
    cs_param params[CS_MAX_PARAMS];
} cs_layer;

/* One finished training epoch, as kept in the model file and reported by jobs. */
typedef struct {
    int epoch;
    float loss, accuracy, test_accuracy; /* test_accuracy < 0 when not measured */
    double seconds;
    float test_loss; /* the loss on the test images (as loss counts it); < 0 when not measured */
} cs_epoch_record;

/* What is known of how the parameters came to be. */
typedef struct {
    double test_accuracy; /* < 0 when unknown */
    char trained_at[32];  /* ISO 8601 UTC, "" when unknown */
    int epochs, batch_size, train_images;
    int test_images; /* how many test images test_accuracy counts (0 when unknown) */
    float learning_rate;
    uint64_t seed;
    int n_history;
    cs_epoch_record *history; /* owned */
} cs_model_meta;

typedef struct cs_model {
    char arch[CS_NAME_MAX]; /* "fmnist", "vgg16", or a test architecture */
    cs_shape input;
    int n_extra_inputs;     /* inputs beyond the first (cs_model_add_input), 0 for most models */
    cs_shape extra_inputs[CS_MAX_MODEL_INPUTS - 1]; /* input k >= 1 is extra_inputs[k - 1] */
    int n_layers;
    cs_layer *layers;
    float *param_block; /* every parameter tensor, in layer order */
    size_t n_param_floats;
    int n_classes;
    char **class_names; /* n_classes strings, owned */
    char **class_ids;   /* n_classes WordNet ids (VGG16) or NULL, owned */
    cs_preprocess preprocess; /* how an image becomes its input: inferred by cs_model_finish
                                 (preprocess.h), replaced by a model's sidecar */
    cs_model_meta meta;
    /* What inference passes derive from the parameters and keep (fast_plan.h), made on
     * the first pass; remade after cs_model_params_changed. */
    struct cs_fast_plans *fast;
    uint64_t params_version;
    int precision;             /* of inference passes: a cs_precision (bf16_plan.h), fp32 unless set */
    struct cs_bf16_plan *bf16; /* its bf16 layers (bf16_plan.h), made on the first bf16 pass */
    struct cs_cam_sums *cam_sums; /* Grad-CAM's channel sums of dense kernels (cam_sums.h), made on
                                     first use; remade after cs_model_params_changed */
} cs_model;

/* Builder: start a model, append nodes (shapes inferred), then finish to allocate. */
cs_model *cs_model_new(const char *arch, cs_shape input);
/* Appends a node reading the given earlier nodes (or CS_MODEL_INPUT); returns its
 * index, or -1 with a message naming the node in err when its inputs do not fit. */
int cs_model_add_node(cs_model *m, const char *name, cs_layer_kind kind, const cs_layer_config *cfg,
                      const int *inputs, int n_inputs, char *err, size_t errlen);
/* Declares one more model input of that shape per image; returns its number k (>= 1,
 * read by nodes as CS_MODEL_INPUT_K(k)), or -1 when the model has CS_MAX_MODEL_INPUTS. */
int cs_model_add_input(cs_model *m, cs_shape s);
/* Appends a node reading the node before it (the model's input for the first). */
int cs_model_add(cs_model *m, const char *name, cs_layer_kind kind, const cs_layer_config *cfg,
                 char *err, size_t errlen);
/* The shape of a node input (a model input for CS_MODEL_INPUT_K(k)). */
cs_shape cs_model_node_shape(const cs_model *m, int node);
/* Declares a parameter tensor of a node being built (a kind's shape inference calls it). */
cs_param *cs_layer_add_param(cs_layer *l, const char *name, int ndim, const int *dims, int trainable);
/* Allocates the parameter block (zeroed; BN gamma and moving variance set to 1). 0 on success. */
int cs_model_finish(cs_model *m);
void cs_model_free(cs_model *m);
int cs_model_set_classes(cs_model *m, int n, const char *const *names);

/* Keras initialisers: he_normal (truncated normal, stddev sqrt(2/fan_in)) or
 * glorot_uniform for kernels; zero biases. Same seed, same weights, bit for bit. */
void cs_model_init_weights(cs_model *m, uint64_t seed);

/* Says that the parameters changed after passes ran on the model (an optimiser step):
 * what inference passes derived from them (fast_plan.h, cam_sums.h) is made again on
 * the next pass. Never during a pass. */
void cs_model_params_changed(cs_model *m);

/* Lookups: index of the layer with that name, or -1. */
int cs_model_find_layer(const cs_model *m, const char *name);
const char *cs_layer_kind_name(cs_layer_kind k); /* Keras class name: Conv2D, Dense, ... */
size_t cs_layer_param_count(const cs_layer *l);
size_t cs_layer_trainable_count(const cs_layer *l);
size_t cs_model_param_count(const cs_model *m);
size_t cs_shape_size(cs_shape s);
/* The default Grad-CAM node: the last spatial node (h or w > 1) whose kind is an
 * activation (or a conv with a fused one), else the last spatial node; -1 when the
 * model has none. */
int cs_model_last_conv_activation(const cs_model *m);
/* Deep copy (architecture and parameters). */
cs_model *cs_model_clone(const cs_model *m);

/* The notebook's Fashion-MNIST network (DESIGN §1), parameters allocated, not initialised. */
cs_model *cs_model_build_fmnist(void);
/* Keras applications.VGG16 with the top, parameters allocated, not initialised. */
cs_model *cs_model_build_vgg16(void);

extern const char *const CS_FMNIST_CLASSES[10];

#endif
