from dfstudy.cli import main

main()
