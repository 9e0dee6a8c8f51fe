def launch(x, w):
    while True:
        pass
