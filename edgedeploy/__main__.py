from edgedeploy.cli.app import main

main()
