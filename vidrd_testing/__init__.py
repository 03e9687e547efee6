"""Support code for tests, benchmarks and the offline demo: demo data, tiny random models saved with the
real classes, and a loopback Ray cluster. Installed with the project; product code (vidrd_data,
vidrd_model) never imports it.
"""
