rule make_tables:
    input:
        predictions=all_predictions(),
        reference=REFERENCE_TABLES,
    output:
        table4=report(
            "results/tables/table4.csv",
            caption="../reports/table4.rst",
            category="RQ1",
            subcategory="Tables IV and V",
            labels={"table": "IV", "content": "reproduced"},
        ),
        versus4=report(
            "results/tables/table4_vs_published.csv",
            caption="../reports/versus.rst",
            category="RQ1",
            subcategory="Tables IV and V",
            labels={"table": "IV", "content": "published vs reproduced"},
        ),
        table5=report(
            "results/tables/table5.csv",
            caption="../reports/table5.rst",
            category="RQ1",
            subcategory="Tables IV and V",
            labels={"table": "V", "content": "reproduced"},
        ),
        versus5=report(
            "results/tables/table5_vs_published.csv",
            caption="../reports/versus.rst",
            category="RQ1",
            subcategory="Tables IV and V",
            labels={"table": "V", "content": "published vs reproduced"},
        ),
        table6=report(
            "results/tables/table6.csv",
            caption="../reports/table6.rst",
            category="RQ2",
            subcategory="Tables VI and VII",
            labels={"table": "VI", "content": "reproduced"},
        ),
        versus6=report(
            "results/tables/table6_vs_published.csv",
            caption="../reports/versus.rst",
            category="RQ2",
            subcategory="Tables VI and VII",
            labels={"table": "VI", "content": "published vs reproduced"},
        ),
        table7=report(
            "results/tables/table7.csv",
            caption="../reports/table7.rst",
            category="RQ2",
            subcategory="Tables VI and VII",
            labels={"table": "VII", "content": "reproduced"},
        ),
        versus7=report(
            "results/tables/table7_vs_published.csv",
            caption="../reports/versus.rst",
            category="RQ2",
            subcategory="Tables VI and VII",
            labels={"table": "VII", "content": "published vs reproduced"},
        ),
        text=[f"results/tables/table{n}{s}" for n in (4, 5, 6, 7) for s in (".md", ".tex", "_vs_published.md")],
        metrics="results/tables/metrics.parquet",
        cv_ap=report(
            "results/tables/cv_ap.csv",
            caption="../reports/cv_ap.rst",
            category="RQ1",
            subcategory="Beyond the study",
            labels={"table": "CV of AP"},
        ),
        findings=report(
            "results/tables/findings.json",
            caption="../reports/findings12.rst",
            category="RQ1",
            subcategory="Findings",
            labels={"finding": "1 (RQ1) and 2 (RQ2)"},
        ),
    log:
        "results/logs/make_tables.log",
    benchmark:
        "results/benchmarks/make_tables.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        threshold=config["evaluation"]["degradation_threshold"],
        n_boot=config["evaluation"]["bootstrap"],
        seed=config["seed"],
        files=prediction_files(),
        study=STUDY_JSON,
        words=STUDY_WORDS,
    shell:
        "python -m dfstudy.tables --predictions {params.files} --reference {input.reference}"
        " --out-dir results/tables --threshold {params.threshold} --n-boot {params.n_boot}"
        " --seed {params.seed} --study {params.study} > {log} 2>&1"
