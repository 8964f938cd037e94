def run(quick):
    raise NotImplementedError
