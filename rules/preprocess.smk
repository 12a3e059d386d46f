rule index_videos:
    input:
        corpus_flag,
    output:
        "results/videos/{source}.parquet",
    log:
        "results/logs/index_videos/{source}.log",
    benchmark:
        "results/benchmarks/index_videos/{source}.tsv"
    params:
        spec=lambda wildcards: as_json(config["sources"][wildcards.source]),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/preprocess.yaml"
    shell:
        "python -m dfstudy.datasets --source {wildcards.source} --spec-json {params.spec}"
        " --out {output} > {log} 2>&1"


rule align_faces:
    input:
        "results/videos/{source}.parquet",
    output:
        manifest="results/faces/{source}/shard_{shard}.parquet",
        crops=directory("results/faces/{source}/shard_{shard}"),
    log:
        "results/logs/align_faces/{source}/{shard}.log",
    benchmark:
        "results/benchmarks/align_faces/{source}/{shard}.tsv"
    params:
        shards=config["preprocess"]["shards"],
        frames=config["preprocess"]["frames_per_video"],
        frames_training=training_frames,
        size=config["preprocess"]["face_size"],
        margin=config["preprocess"]["margin"],
        detect_width=config["preprocess"]["detect_width"],
        min_face=config["preprocess"]["min_face"],
    threads: 4
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        "../envs/preprocess.yaml"
    shell:
        "python -m dfstudy.faces extract --videos {input} --shard {wildcards.shard} --shards {params.shards}"
        " --out-dir {output.crops} --manifest {output.manifest} --frames {params.frames}"
        " --frames-training {params.frames_training}"
        " --size {params.size} --margin {params.margin} --detect-width {params.detect_width}"
        " --min-face {params.min_face} --threads {threads} > {log} 2>&1"


rule merge_faces:
    input:
        expand("results/faces/{{source}}/shard_{shard}.parquet", shard=SHARDS),
    output:
        manifest="results/faces/{source}/manifest.parquet",
        skipped="results/faces/{source}/skipped.csv",
    log:
        "results/logs/merge_faces/{source}.log",
    benchmark:
        "results/benchmarks/merge_faces/{source}.tsv"
    params:
        max_failed=config["preprocess"]["max_failed_share"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/preprocess.yaml"
    shell:
        "python -m dfstudy.faces merge --shards {input} --out {output.manifest}"
        " --skipped {output.skipped} --max-failed-share {params.max_failed} > {log} 2>&1"
