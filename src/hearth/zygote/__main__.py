import sys

from hearth.zygote.process import main

if __name__ == "__main__":
    main(sys.argv[1:])
