from dfstudy.synth.cli import main

main()
