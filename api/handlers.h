/*
 * handlers.h - every route handler, grouped by the file that implements it.
 * Each takes the request and writes exactly one reply (see http.h).
 */
#ifndef CS_API_HANDLERS_H
#define CS_API_HANDLERS_H

#include "http.h"

/* system.c: front-end, contract, health, metrics */
void cs_h_index(cs_req *req, cs_reply *rep);
void cs_h_static(cs_req *req, cs_reply *rep);
void cs_h_openapi(cs_req *req, cs_reply *rep);
void cs_h_healthz(cs_req *req, cs_reply *rep);
void cs_h_readyz(cs_req *req, cs_reply *rep);
void cs_h_metrics(cs_req *req, cs_reply *rep);
/* models.c */
void cs_h_models_list(cs_req *req, cs_reply *rep);
void cs_h_model_summary(cs_req *req, cs_reply *rep);
/* One model as GET /v1/models lists it (NULL when out of memory). */
struct cs_served_model;
struct json_t;
struct json_t *cs_model_entry_json(struct cs_served_model *s);
/* model_files.c */
void cs_h_model_upload(cs_req *req, cs_reply *rep);
void cs_h_model_delete(cs_req *req, cs_reply *rep);
/* predict.c */
void cs_h_predict(cs_req *req, cs_reply *rep);
/* visual.c */
void cs_h_filters(cs_req *req, cs_reply *rep);
void cs_h_feature_maps(cs_req *req, cs_reply *rep);
/* values.c */
void cs_h_activations(cs_req *req, cs_reply *rep);
void cs_h_weights(cs_req *req, cs_reply *rep);
/* gradcam.c */
void cs_h_gradcam(cs_req *req, cs_reply *rep);
/* explain.c, explain_compare.c, explain_eval.c */
void cs_h_explain(cs_req *req, cs_reply *rep);
void cs_h_explain_compare(cs_req *req, cs_reply *rep);
void cs_h_explain_evaluate(cs_req *req, cs_reply *rep);
/* jobs.c */
void cs_h_train(cs_req *req, cs_reply *rep);
void cs_h_jobs_list(cs_req *req, cs_reply *rep);
void cs_h_job_status(cs_req *req, cs_reply *rep);
void cs_h_job_cancel(cs_req *req, cs_reply *rep);
/* eval_jobs.c */
void cs_h_evaluation_start(cs_req *req, cs_reply *rep);
void cs_h_evaluation(cs_req *req, cs_reply *rep);
void cs_h_evaluation_png(cs_req *req, cs_reply *rep);
/* projector_jobs.c */
void cs_h_projector_start(cs_req *req, cs_reply *rep);
void cs_h_projector(cs_req *req, cs_reply *rep);
/* atlas_jobs.c */
void cs_h_atlas_start(cs_req *req, cs_reply *rep);
void cs_h_atlas(cs_req *req, cs_reply *rep);
void cs_h_atlas_png(cs_req *req, cs_reply *rep);
/* job_snapshots.c */
void cs_h_job_snapshots(cs_req *req, cs_reply *rep);
void cs_h_job_snapshot_png(cs_req *req, cs_reply *rep);
/* model_versions.c */
void cs_h_versions(cs_req *req, cs_reply *rep);
void cs_h_versions_compare(cs_req *req, cs_reply *rep);
void cs_h_version_serve(cs_req *req, cs_reply *rep);
/* datasets.c */
void cs_h_dataset_info(cs_req *req, cs_reply *rep);
void cs_h_dataset_image(cs_req *req, cs_reply *rep);

#endif
