"""Entity-level sentiment: sentiment toward, and relevance of, each entity a document names.

from classifier.entity import EntityPrediction, load_entity_engine
engine = load_entity_engine(settings)  # None until an entity model is promoted
engine.predict([("Acme beats estimates while rival Globex warns", ["Acme", "Globex"])])
# -> [[EntityPrediction(entity, sentiment, sentiment_score, relevance), ...]]  (most relevant first)
"""

from classifier.entity.api import EntityInputError, EntityPrediction, load_entity_engine

__all__ = ["EntityInputError", "EntityPrediction", "load_entity_engine"]
