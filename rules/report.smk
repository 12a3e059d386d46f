# The study report (results/report/study.html + study.md) and the target that rebuilds tables, figures
# and report from existing predictions, heatmaps and neuron rankings without any training:
#   snakemake report_only --workflow-profile profiles/report


rule render_report:
    input:
        tables=[f"results/tables/table{n}{s}.csv" for n in (4, 5, 6, 7) for s in ("", "_vs_published")],
        cv_ap="results/tables/cv_ap.csv",
        comparison=rules.compare_families.output.table,
        loo=(["results/tables/loo.csv"] if config.get("loo", {}).get("architectures") else []),
        faithfulness=(["results/tables/rq3_faithfulness.csv"] if config["gradcam"]["faithfulness"]["images"] else []),
        findings=[
            "results/tables/findings.json",
            "results/tables/findings_rq3.json",
            "results/tables/findings_rq4.json",
            rules.compare_families.output.summary,
            *(["results/tables/faithfulness.json"] if config["gradcam"]["faithfulness"]["images"] else []),
        ],
        figures=[
            *rq3_figures(),
            *(f"results/figures/fig5_{a}.png" for a in CAUSAL_ARCHS),
            rules.compare_families.output.figure,
        ],
        manifests=list(face_manifests().values()),
        summary="results/splits/summary.csv",
        cards=[f"results/models/{t}/{a}/{s}.json" for t, a, s in detectors()],
        benchmarks=benchmark_files,
        templates=REPORT_TEMPLATES,
    output:
        html=report(
            "results/report/study.html",
            caption="../reports/study.rst",
            category="Study report",
            labels={"format": "HTML (self-contained)"},
        ),
        md="results/report/study.md",
        sources=report(
            "results/report/sources.csv",
            caption="../reports/setup_sources.rst",
            category="Setup",
            subcategory="Data and detectors",
            labels={"table": "sources"},
        ),
        datasets=report(
            "results/report/datasets.csv",
            caption="../reports/setup_datasets.rst",
            category="Setup",
            subcategory="Data and detectors",
            labels={"table": "datasets and splits"},
        ),
        detectors=report(
            "results/report/detectors.csv",
            caption="../reports/setup_detectors.rst",
            category="Setup",
            subcategory="Data and detectors",
            labels={"table": "detectors"},
        ),
        deviations=report(
            "results/report/deviations.csv",
            caption="../reports/deviations.rst",
            category="Setup",
            subcategory="Protocol",
            labels={"table": "deviations from the study"},
        ),
    log:
        "results/logs/render_report.log",
    benchmark:
        "results/benchmarks/render_report.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=as_json(config),
        study=STUDY_JSON,
    shell:
        "python -m dfstudy.report --config-json {params.cfg} --study {params.study} --tables {input.tables} {input.cv_ap} {input.faithfulness}"
        " {input.comparison} {input.loo}"
        " --findings {input.findings} --figures {input.figures} --manifests {input.manifests}"
        " --split-summary {input.summary} --cards {input.cards} --benchmarks {input.benchmarks}"
        " --templates {input.templates} --html {output.html} --md {output.md} --sources-csv {output.sources}"
        " --datasets-csv {output.datasets} --detectors-csv {output.detectors}"
        " --deviations-csv {output.deviations} > {log} 2>&1"


rule report_only:
    """Tables, figures and the report only. With profiles/report (allowed-rules), Snakemake builds the DAG
    from the summary and plotting rules alone: training, prediction, Grad-CAM and neuron ranking cannot
    be scheduled, their existing outputs are taken as given, and a missing one is an error."""
    input:
        "results/report/study.html",
        *(f"results/tables/rq3_ssim_{v}.csv" for v in GRADCAM_VARIANTS),
        "results/tables/rq4_overlap.csv",
        *(f.replace(".png", ".pdf") for f in rq3_figures()),
        *(f"results/figures/fig5_{a}.pdf" for a in CAUSAL_ARCHS),
    localrule: True
