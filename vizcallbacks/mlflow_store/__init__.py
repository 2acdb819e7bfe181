"""MLflow as both sides reach it: the writers that log to it and the readers that read runs back.

``server`` (importing MLflow, the health probe, errors), ``tracking_uri`` (a URI made absolute and
checked, its client) and ``image_files`` (the names ``log_image`` gives image files). Nothing here
writes or reads a run; importing it loads neither MLflow nor Keras.
"""
