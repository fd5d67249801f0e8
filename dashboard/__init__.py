"""The Streamlit dashboard over ClickHouse: overview, topics and tickers, live feed, alerts, SQL explorer and pipeline
health (`finpulse dashboard`)."""
