from hack.chart import main

main()
