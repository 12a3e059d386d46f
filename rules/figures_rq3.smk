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
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        study=STUDY_JSON,
        words=STUDY_WORDS,
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
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        files=lambda wildcards, input: " ".join(
            f"{d}/{wildcards.variant}/{x}.npz" for d in input.heatmaps for x in rq3_datasets(wildcards.trainset)
        ),
        seed=config["seed"],
        study=STUDY_JSON,
        words=STUDY_WORDS,
    shell:
        "python -m dfstudy.figures_rq3 fig2 --heatmaps {params.files} --splits {input.splits}"
        " --seed {params.seed} --png {output.png} --pdf {output.pdf} --study {params.study} > {log} 2>&1"
