from hack.docs import main

main()
