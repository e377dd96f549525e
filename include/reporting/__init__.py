"""Data analytics (DA) reporting: business metrics export, charts and the HTML report.

``business`` builds the metrics_ marts, exports them to immutable Parquet/CSV, writes the
lapsed-customer CSV and renders the report; ``charts`` draws its figures. Heavy libraries
(pandas, matplotlib) are imported inside functions, so importing this package is cheap.
"""
