rule synthesize_corpus:
    output:
        index=f"{config['corpus']['root']}/corpus.csv",
    log:
        "results/logs/synthesize_corpus.log",
    benchmark:
        "results/benchmarks/synthesize_corpus.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 16  # capped at --cores
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        spec=as_json({k: v for k, v in config["corpus"].items() if k not in ("synthesize", "root")}),
        seed=config["seed"],
        root=lambda wildcards, output: Path(output.index).parent,
    shell:
        "python -m dfstudy.synth --out {params.root} --spec-json {params.spec}"
        " --seed {params.seed} --threads {threads} > {log} 2>&1"
