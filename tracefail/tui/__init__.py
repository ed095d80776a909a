"""The Textual browser (`tracefail browse`). The only package that imports textual."""
