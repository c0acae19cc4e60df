# The code folder the corpus jobs name (`code: src`); never run by the compat test.
print("train")
