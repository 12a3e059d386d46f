# dfstudy: how well do deepfake detectors generalise to deepfakes they were not trained on?
# Raw videos -> aligned faces -> leak-free splits -> 30 detectors -> RQ1-RQ4 -> report.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "reports/workflow.rst"


include: "rules/common.smk"
include: "rules/synth.smk"
include: "rules/datasets.smk"
include: "rules/faces.smk"
include: "rules/splits.smk"
include: "rules/train.smk"
include: "rules/analyse.smk"
include: "rules/tables.smk"
include: "rules/comparison.smk"
include: "rules/similarity.smk"
include: "rules/figures_rq3.smk"
include: "rules/faithfulness.smk"
include: "rules/causal.smk"
include: "rules/figures_rq4.smk"
include: "rules/loo.smk"
include: "rules/report.smk"


localrules:
    all,
    audit_leakage,
    audit_loo_splits,
    overlap_neurons,
    summarize_neurons,
    summarize_ssim,
    summarize_faithfulness,
    plot_ssim,
    plot_neurons,


rule all:
    default_target: True
    input:
        final_targets(),
