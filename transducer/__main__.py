from transducer.cli import main

main()
