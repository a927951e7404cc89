"""The prosumer's pages: dashboard, board (with its actions) and trades, per community."""

from django.urls import path

from marketplace.views import autopilot, board, pages

app_name = "marketplace"

urlpatterns = [
    path("dashboard/", pages.dashboard_home, name="dashboard_home"),
    path("board/", pages.board_home, name="board_home"),
    path("trades/", pages.trades_home, name="trades_home"),
    path("c/<slug:slug>/dashboard/", pages.dashboard, name="dashboard"),
    path("c/<slug:slug>/trades/", pages.trades, name="trades"),
    path("c/<slug:slug>/trades.csv", pages.trades_csv, name="trades_csv"),
    path("c/<slug:slug>/history/", pages.history, name="history"),
    path("c/<slug:slug>/autopilot/", autopilot.autopilot, name="autopilot"),
    path("c/<slug:slug>/board/", board.board, name="board"),
    path("c/<slug:slug>/board/post/", board.posting_new, name="posting_new"),
    path("c/<slug:slug>/postings/<int:pk>/bid/", board.bid_new, name="bid_new"),
    path(
        "c/<slug:slug>/postings/<int:pk>/cancel/", board.posting_cancel_view, name="posting_cancel"
    ),
    path(
        "c/<slug:slug>/postings/<int:pk>/modify/", board.posting_modify_view, name="posting_modify"
    ),
    path("c/<slug:slug>/bids/<int:pk>/modify/", board.bid_modify_view, name="bid_modify"),
    path("c/<slug:slug>/bids/<int:pk>/accept/", board.bid_accept_view, name="bid_accept"),
    path("c/<slug:slug>/bids/<int:pk>/reject/", board.bid_reject_view, name="bid_reject"),
    path("c/<slug:slug>/bids/<int:pk>/withdraw/", board.bid_withdraw_view, name="bid_withdraw"),
]
