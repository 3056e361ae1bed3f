from supportdesk.cli import main

main()
