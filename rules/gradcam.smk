rule explain_detector:
    input:
        model="results/models/{trainset}/{arch}/{strategy}.keras",
        splits=lambda wildcards: [f"results/splits/{d}/test.npz" for d in rq3_datasets(wildcards.trainset)],
    output:
        directory("results/gradcam/{trainset}/{arch}/{strategy}"),
    log:
        "results/logs/explain_detector/{trainset}/{arch}/{strategy}.log",
    benchmark:
        "results/benchmarks/explain_detector/{trainset}/{arch}/{strategy}.tsv"
    params:
        pairs=heatmap_pairs,
        opts=gradcam_options,
        n=config["gradcam"]["images"],
        batch=config["gradcam"]["batch_size"],
        seed=config["seed"],
        gpu=GPU_CHECK,
        plugins=PLUGINS,
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    conda:
        GPU_ENV
    shell:
        # tf-explain is TensorFlow code: Grad-CAM runs on TensorFlow whatever detectors.backend says
        "KERAS_BACKEND=tensorflow python -m dfstudy.gradcam --model {input.model} {params.pairs} {params.opts}"
        " --n-images {params.n} --seed {params.seed} --batch-size {params.batch} --threads {threads}"
        " {params.plugins} {params.gpu} > {log} 2>&1"


rule compare_heatmaps:
    input:
        heatmaps_of_group,
    output:
        "results/gradcam/ssim/{variant}/{trainset}_{arch}_{dataset}.csv",
    log:
        "results/logs/compare_heatmaps/{variant}/{trainset}_{arch}_{dataset}.log",
    benchmark:
        "results/benchmarks/compare_heatmaps/{variant}/{trainset}_{arch}_{dataset}.tsv"
    params:
        files=group_heatmap_files,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m dfstudy.similarity compare --group {wildcards.trainset}/{wildcards.arch}"
        " --dataset {wildcards.dataset} --heatmaps {params.files} --out {output} > {log} 2>&1"


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
    params:
        variants=" ".join(GRADCAM_VARIANTS),
        study=STUDY_JSON,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m dfstudy.similarity summarize --inputs {input} --variants {params.variants}"
        " --tables {output.tables} --findings {output.findings} --study {params.study} > {log} 2>&1"


rule plot_ssim:
    input:
        "results/tables/rq3_ssim_{variant}.csv",
    output:
        png=report(
            "results/figures/fig3_ssim_{variant}.png",
            caption="../reports/fig3.rst",
            category="RQ3",
            subcategory="Figures",
            labels={"figure": "3", "variant": "{variant}"},
        ),
        pdf="results/figures/fig3_ssim_{variant}.pdf",
    log:
        "results/logs/plot_ssim/{variant}.log",
    benchmark:
        "results/benchmarks/plot_ssim/{variant}.tsv"
    params:
        study=STUDY_JSON,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m dfstudy.figures_rq3 fig3 --table {input} --png {output.png} --pdf {output.pdf}"
        " --study {params.study} > {log} 2>&1"


rule plot_heatmaps:
    input:
        heatmaps=figure2_heatmaps,
        splits=lambda wildcards: [f"results/splits/{d}/test.npz" for d in rq3_datasets(wildcards.trainset)],
    output:
        png=report(
            "results/figures/fig2_heatmaps_{trainset}_{variant}.png",
            caption="../reports/fig2.rst",
            category="RQ3",
            subcategory="Figures",
            labels={"figure": "2", "trained on": "{trainset}", "variant": "{variant}"},
        ),
        pdf="results/figures/fig2_heatmaps_{trainset}_{variant}.pdf",
    log:
        "results/logs/plot_heatmaps/{trainset}_{variant}.log",
    benchmark:
        "results/benchmarks/plot_heatmaps/{trainset}_{variant}.tsv"
    params:
        files=lambda wildcards, input: " ".join(
            f"{d}/{wildcards.variant}/{x}.npz" for d in input.heatmaps for x in rq3_datasets(wildcards.trainset)
        ),
        seed=config["seed"],
        study=STUDY_JSON,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m dfstudy.figures_rq3 fig2 --heatmaps {params.files} --splits {input.splits}"
        " --seed {params.seed} --png {output.png} --pdf {output.pdf} --study {params.study} > {log} 2>&1"


rule summarize_faithfulness:
    input:
        faithfulness_inputs(),
    output:
        table=report(
            "results/tables/rq3_faithfulness.csv",
            caption="../reports/rq3_faithfulness.rst",
            category="RQ3",
            subcategory="Tables",
            labels={"table": "Grad-CAM deletion test"},
        ),
        findings="results/tables/faithfulness.json",
        png=report(
            "results/figures/fig_faithfulness.png",
            caption="../reports/rq3_faithfulness.rst",
            category="RQ3",
            subcategory="Figures",
            labels={"figure": "deletion test"},
        ),
        pdf="results/figures/fig_faithfulness.pdf",
    log:
        "results/logs/summarize_faithfulness.log",
    benchmark:
        "results/benchmarks/summarize_faithfulness.tsv"
    params:
        files=lambda wildcards, input: " ".join(f"{d}/faithfulness.csv" for d in input),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/train.yaml"
    shell:
        "python -m dfstudy.faithfulness --inputs {params.files} --table {output.table}"
        " --findings {output.findings} --png {output.png} --pdf {output.pdf} > {log} 2>&1"
