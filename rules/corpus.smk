rule synthesize_corpus:
    output:
        index=f"{config['corpus']['root']}/corpus.csv",
    log:
        "results/logs/synthesize_corpus.log",
    benchmark:
        "results/benchmarks/synthesize_corpus.tsv"
    params:
        spec=as_json({k: v for k, v in config["corpus"].items() if k not in ("synthesize", "root")}),
        seed=config["seed"],
        root=lambda wildcards, output: Path(output.index).parent,
    threads: 16  # capped at --cores
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/preprocess.yaml"
    shell:
        "python -m dfstudy.synth --out {params.root} --spec-json {params.spec}"
        " --seed {params.seed} --threads {threads} > {log} 2>&1"
