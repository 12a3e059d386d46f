# one job per congenetic group and variant, over the group's RQ3 test sets
rule compare_heatmaps:
    input:
        heatmaps_of_group,
    output:
        "results/gradcam/ssim/{variant}/{trainset}_{arch}.csv",
    log:
        "results/logs/compare_heatmaps/{variant}/{trainset}_{arch}.log",
    benchmark:
        "results/benchmarks/compare_heatmaps/{variant}/{trainset}_{arch}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        files=group_heatmap_files,
    shell:
        "python -m dfstudy.similarity compare --group {wildcards.trainset}/{wildcards.arch} {params.files}"
        " --out {output} > {log} 2>&1"


rule summarize_ssim:
    input:
        ssim_tables(),
    output:
        tables=[
            report(
                f"results/tables/rq3_ssim_{v}.csv",
                caption="../reports/rq3_ssim.rst",
                category="RQ3",
                subcategory="Tables",
                labels={"table": "SSIM bins per group and test set", "variant": v},
            )
            for v in GRADCAM_VARIANTS
        ],
        findings=report(
            "results/tables/findings_rq3.json",
            caption="../reports/findings_rq3.rst",
            category="RQ3",
            subcategory="Findings",
            labels={"finding": "3"},
        ),
    log:
        "results/logs/summarize_ssim.log",
    benchmark:
        "results/benchmarks/summarize_ssim.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        variants=" ".join(GRADCAM_VARIANTS),
        study=STUDY_JSON,
    shell:
        "python -m dfstudy.similarity summarize --inputs {input} --variants {params.variants}"
        " --tables {output.tables} --findings {output.findings} --study {params.study} > {log} 2>&1"
