from dlcourse.train import main

main()
