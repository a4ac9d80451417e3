/*
 * explain_api.h - what the explanation routes share (explain.c, explain_compare.c,
 * explain_eval.c): the methods and parameters of a request, the image being explained,
 * and the JSON of maps, scores and sanity checks.
 *
 * Each *_or_reply function returns its result, or 0 / NULL after writing the error
 * reply: 400 naming the parameter that is wrong, 404 for an unknown layer.
 */
#ifndef CS_API_EXPLAIN_H
#define CS_API_EXPLAIN_H

#include <jansson.h>

#include "explain/explain.h"
#include "explain/faith.h"
#include "http.h"
#include "input.h"

/* ?method=: one method (required). */
const cs_explain_method *cs_explain_method_or_reply(const cs_req *req, cs_reply *rep);
/* ?methods=a,b,c: up to max methods, in the order given, each once (default: every
 * method). Their count, or 0 after a reply. */
int cs_explain_methods_or_reply(const cs_req *req, cs_reply *rep, const cs_explain_method **out, int max);

/* The method parameters of the query (layer, class, score, samples, noise, steps,
 * baseline, blur_sigma, patch, stride, batch, seed), checked against m for each of the
 * n methods. 1, or 0 after a reply. */
int cs_explain_params_or_reply(const cs_req *req, cs_reply *rep, const cs_model *m,
                               const cs_explain_method *const *meths, int n, cs_explain_params *p);
/* The faithfulness parameters of the query (curve_steps, road_noise; seed, batch and
 * blur_sigma as for the methods). 1, or 0 after a reply. */
int cs_faith_params_or_reply(const cs_req *req, cs_reply *rep, const cs_model *m, const cs_explain_params *ep,
                             cs_faith_params *fp);

/* One image being explained for a request: the model version, the decoded image, its
 * input tensor, and the explainer over them (borrowing an exec of the version). */
typedef struct {
    cs_served_model *served;
    cs_model_version *v;
    const cs_model *m;
    cs_input_set in;
    float *x;
    float *black, *white; /* the model's black and white pixel, per channel */
    cs_exec *e;
    cs_explainer ex;
    int ready;
} cs_explain_req;

/* Model first (404, 503), so that the caller can check the parameters against it. */
int cs_explain_req_model(cs_req *req, cs_reply *rep, cs_explain_req *r);
/* Then the image (the body or ?sample=) and the explainer's first forward, for the n
 * methods with p (what it keeps: cs_explain_keep). */
int cs_explain_req_image(cs_req *req, cs_reply *rep, cs_explain_req *r, const cs_explain_method *const *meths, int n,
                         const cs_explain_params *p);
void cs_explain_req_close(cs_explain_req *r);

/* JSON pieces. */
json_t *cs_rows_json(const float *v, int h, int w);
json_t *cs_explain_method_json(const cs_explain_method *meth);
/* The parameters the method read, as run (defaults filled in). */
json_t *cs_explain_params_json(const cs_model *m, const cs_explain_map *map);
/* Class, scores, layer, size, the raw map and the heat, passes and seconds. */
json_t *cs_explain_map_json(const cs_model *m, const cs_explain_map *map);
json_t *cs_faith_json(const cs_faith_result *r);
json_t *cs_sanity_json(const cs_sanity_result *r);

/* The heat drawn as an overlay on the image or alone (format 0 or 1), `size` pixels
 * across (0: the route's default), as the gradcam route draws it. NULL when out of memory. */
cs_image *cs_explain_draw(const cs_explain_req *r, const cs_explain_map *map, int format, float alpha, int size);
/* The default overlay weight for m. */
float cs_explain_default_alpha(const cs_model *m);

#endif
